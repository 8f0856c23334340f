"""Parametric reflectance spectra for the synthetic scenes (self-contained: no spectral library needed).

Every material is a smooth function of wavelength built from a few physically motivated pieces
(pigment absorptions, the red edge, liquid-water and dry-matter absorptions in the SWIR, iron-oxide,
clay and carbonate features, hydrocarbon and polymer bands). Each call draws its own parameters from a
generator, so every object in a scene gets its own variant of its class.

Spectra are evaluated on a fine wavelength grid (reflectance 0..1) and then integrated over each
band's Gaussian spectral response (`band_response_matrix`), like a real sensor does.
"""

import numpy as np

FINE_STEP_NM = 2.0

# class value -> material variants and their prior weights (used when the caller gives no variant)
VARIANTS = {
    1: {"red_tile": 0.45, "grey_concrete": 0.20, "metal_bright": 0.15, "bitumen": 0.20},
    2: {"asphalt": 0.60, "concrete": 0.25, "red_surface": 0.15},
    3: {"green_grass": 0.65, "dry_grass": 0.35},
    4: {"deciduous": 0.75, "conifer": 0.25},
    5: {"dry_soil": 0.50, "moist_soil": 0.25, "sand": 0.25},
    6: {"clear": 0.60, "turbid": 0.40},
}


def fine_grid(wl_min_nm=350.0, wl_max_nm=2600.0):
    """The fine wavelength grid (nm) the materials are evaluated on before band integration."""
    lo = min(350.0, float(wl_min_nm))
    hi = max(2600.0, float(wl_max_nm))
    n = int(round((hi - lo) / FINE_STEP_NM)) + 1
    return lo + FINE_STEP_NM * np.arange(n, dtype=np.float64)


def _g(wl, centre, width):
    """Gaussian bump (peak 1)."""
    return np.exp(-0.5 * ((wl - centre) / width) ** 2)


def _sig(wl, centre, width):
    """Logistic step from 0 to 1 (overflow-free form)."""
    return 0.5 * (1.0 + np.tanh((wl - centre) / (2.0 * width)))


def _ramp(wl, start, stop):
    return np.clip((wl - start) / (stop - start), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# shared absorption shapes


def leaf_water_depth(wl):
    """Relative optical depth of liquid water in a canopy (the 970/1200/1450/1940 nm bands plus the
    SWIR continuum that rises towards the 2.7 um fundamental)."""
    continuum = 1.1 * np.clip((wl - 1150.0) / 1000.0, 0.0, None) ** 1.2
    return (continuum + 0.03 * _g(wl, 970, 35) + 0.10 * _g(wl, 1200, 50) + 1.2 * _g(wl, 1450, 75)
            + 1.5 * _g(wl, 1940, 90) + 0.8 * _g(wl, 2550, 120))


def dry_matter_depth(wl):
    """Relative optical depth of cellulose / lignin / protein (1730, 2100, 2300 nm)."""
    return 0.25 * _g(wl, 1730, 30) + 0.45 * _g(wl, 2100, 50) + 1.0 * _g(wl, 2300, 50)


# ---------------------------------------------------------------------------------------------------
# vegetation


def vegetation(wl, nir=0.42, vis_level=1.0, chl=1.0, edge_nm=718.0, edge_width=13.0, water=0.9,
               dry_matter=0.25, nir_slope=0.12):
    """Green canopy: chlorophyll absorption in the blue (~450) and red (~680), green peak (~550),
    red edge (~700-740), NIR plateau, water and dry-matter absorptions in the NIR/SWIR."""
    # visible: pigment-controlled; lower chlorophyll lifts the red and flattens the green peak
    vis = vis_level * (0.025 + 0.040 * _g(wl, 552, 30) + 0.015 * _g(wl, 610, 40))
    vis = vis + (1.0 - chl) * 0.06 * _sig(wl, 560, 35)
    edge = _sig(wl, edge_nm, edge_width)
    plateau = nir * (1.0 + nir_slope * _ramp(wl, 750, 1100))
    swir = np.exp(-water * leaf_water_depth(wl) - dry_matter * dry_matter_depth(wl))
    return vis * (1.0 - edge) + edge * plateau * swir


def litter(wl, level=1.0):
    """Senescent grass / litter: no red edge to speak of, brown visible, rising NIR, weak water,
    strong cellulose-lignin features."""
    base = 0.04 + 0.07 * _sig(wl, 590, 45) + 0.25 * _sig(wl, 950, 170)
    return level * base * np.exp(-0.25 * leaf_water_depth(wl) - 1.0 * dry_matter_depth(wl))


def green_grass(rng, wl):
    return vegetation(wl, nir=rng.uniform(0.30, 0.46), vis_level=rng.uniform(0.9, 1.3),
                      chl=rng.uniform(0.8, 1.0), edge_nm=rng.uniform(712, 722),
                      water=rng.uniform(0.55, 0.9), dry_matter=rng.uniform(0.2, 0.4))


def dry_grass(rng, wl):
    green = vegetation(wl, nir=rng.uniform(0.30, 0.42), vis_level=rng.uniform(1.0, 1.4),
                       chl=rng.uniform(0.4, 0.8), edge_nm=rng.uniform(705, 715),
                       water=rng.uniform(0.4, 0.7), dry_matter=rng.uniform(0.3, 0.6))
    f = rng.uniform(0.45, 0.85)
    return (1.0 - f) * green + f * litter(wl, rng.uniform(0.85, 1.25))


def deciduous(rng, wl):
    return vegetation(wl, nir=rng.uniform(0.20, 0.33), vis_level=rng.uniform(0.65, 0.9),
                      chl=1.0, edge_nm=rng.uniform(714, 722), water=rng.uniform(1.05, 1.3),
                      dry_matter=rng.uniform(0.25, 0.4))


def conifer(rng, wl):
    return vegetation(wl, nir=rng.uniform(0.15, 0.21), vis_level=rng.uniform(0.6, 0.8),
                      chl=1.0, edge_nm=rng.uniform(716, 724), water=rng.uniform(1.1, 1.35),
                      dry_matter=rng.uniform(0.3, 0.45))


# ---------------------------------------------------------------------------------------------------
# soil


def soil(wl, dark=0.08, bright=0.38, rise_nm=450.0, iron=0.3, clay=0.06, carbonate=0.03,
         moisture=0.1):
    """Monotone rise from the blue to the SWIR, iron-oxide absorptions (~500 and ~900 nm), clay
    hydroxyl (~2200), carbonate (~2340), hygroscopic water (~1400/1900), fall-off past ~2350."""
    base = dark + (bright - dark) * (1.0 - np.exp(-np.clip(wl - 400.0, 0.0, None) / rise_nm))
    feat = (1.0 - iron * (0.35 * _g(wl, 470, 45) + 0.12 * _g(wl, 900, 90))
            - clay * _g(wl, 2205, 25) - carbonate * _g(wl, 2340, 30)
            - moisture * (0.5 * _g(wl, 1420, 45) + _g(wl, 1920, 60)))
    return base * feat * (1.0 - 0.14 * _sig(wl, 2390, 35))


def dry_soil(rng, wl):
    return soil(wl, dark=rng.uniform(0.06, 0.10), bright=rng.uniform(0.30, 0.42),
                rise_nm=rng.uniform(380, 560), iron=rng.uniform(0.1, 0.5),
                clay=rng.uniform(0.03, 0.12), carbonate=rng.uniform(0.0, 0.08),
                moisture=rng.uniform(0.05, 0.15))


def moist_soil(rng, wl):
    s = soil(wl, dark=rng.uniform(0.04, 0.07), bright=rng.uniform(0.20, 0.30),
             rise_nm=rng.uniform(450, 650), iron=rng.uniform(0.1, 0.4),
             clay=rng.uniform(0.03, 0.10), carbonate=rng.uniform(0.0, 0.05),
             moisture=rng.uniform(0.25, 0.45))
    return s


def sand(rng, wl):
    return soil(wl, dark=rng.uniform(0.08, 0.11), bright=rng.uniform(0.34, 0.44),
                rise_nm=rng.uniform(320, 450), iron=rng.uniform(0.2, 0.5),
                clay=rng.uniform(0.01, 0.05), carbonate=rng.uniform(0.0, 0.04),
                moisture=rng.uniform(0.02, 0.08))


# ---------------------------------------------------------------------------------------------------
# water


def water(wl, blue=0.016, turbidity=0.0, glint=0.003):
    """Low everywhere, highest in the blue-green, falling steeply into the NIR (water absorbs);
    suspended sediment lifts the green-red and leaves a small ~810 nm peak."""
    vis = blue * (_g(wl, 545, 70) + 0.3 * (1.0 - _sig(wl, 500, 30)))
    nir = 0.012 * np.exp(-np.clip(wl - 700.0, 0.0, None) / 900.0)
    sed = turbidity * (0.035 * _g(wl, 580, 65) + 0.012 * _g(wl, 810, 25) + 0.006 * _g(wl, 690, 40))
    return glint + vis + nir + sed


def clear_water(rng, wl):
    return water(wl, blue=rng.uniform(0.008, 0.018), turbidity=rng.uniform(0.0, 0.2),
                 glint=rng.uniform(0.001, 0.005))


def turbid_water(rng, wl):
    return water(wl, blue=rng.uniform(0.008, 0.016), turbidity=rng.uniform(0.4, 1.0),
                 glint=rng.uniform(0.001, 0.005))


# ---------------------------------------------------------------------------------------------------
# roofs


def red_tile(rng, wl):
    """Fired clay / red cement tile: dark blue-green, steep iron-oxide rise at 550-620 nm, shallow
    ferric band near 900 nm, broad rise to a bright SWIR, weak clay feature, fall-off past 2350."""
    s = rng.uniform(0.7, 1.2)
    r = (0.055 + 0.015 * _ramp(wl, 420, 560) + 0.13 * _sig(wl, 590, 17)
         + 0.04 * _ramp(wl, 650, 900) + rng.uniform(0.10, 0.20) * _sig(wl, 1120, 110))
    r = r * (1.0 - 0.07 * _g(wl, 900, 70)) * (1.0 - 0.03 * _g(wl, 2205, 25))
    r = r * (1.0 - rng.uniform(0.05, 0.3) * _sig(wl, 2330, 25))
    return s * r


def grey_concrete(rng, wl):
    """Cement-based roofing: grey, slight rise, carbonate band at ~2340 nm, weak bound-water bands."""
    level = rng.uniform(0.15, 0.30)
    r = level * (0.70 + 0.30 * _sig(wl, 520, 45)) * (1.0 + 0.10 * _sig(wl, 1100, 200))
    r = r * (1.0 - 0.05 * _g(wl, 1420, 40) - 0.08 * _g(wl, 1930, 50)
             - rng.uniform(0.08, 0.2) * _g(wl, 2340, 30))
    return r * (1.0 - 0.15 * _sig(wl, 2390, 40))


def metal_bright(rng, wl):
    """Coated metal / white membrane: bright and flat, blue a little lower, polymer C-H bands at
    1730 and (strong) 2300 nm."""
    level = rng.uniform(0.33, 0.60)
    r = level * (0.78 + 0.22 * _sig(wl, 520, 50)) * (1.0 - 0.05 * _ramp(wl, 900, 2200))
    r = r * (1.0 - 0.12 * _g(wl, 1210, 30) - 0.15 * _g(wl, 1730, 25)
             - rng.uniform(0.3, 0.55) * _sig(wl, 2270, 20))
    return r


def bitumen(rng, wl):
    """Bitumen sheeting / tar roofs: dark, nearly flat, slowly rising, hydrocarbon bands."""
    level = rng.uniform(0.05, 0.09)
    r = level * (1.0 + rng.uniform(0.4, 1.2) * _ramp(wl, 420, 2100))
    return r * (1.0 - 0.05 * _g(wl, 1730, 25) - 0.10 * _g(wl, 2310, 35))


# ---------------------------------------------------------------------------------------------------
# pavement


def asphalt(rng, wl):
    """Asphalt: dark, flat, slightly rising (rises more as the binder ages and aggregate shows),
    hydrocarbon bands at 1730 / 2310 nm and a fall-off past ~2350 nm."""
    level = rng.uniform(0.045, 0.08)
    r = (level * (1.0 + rng.uniform(0.15, 0.5) * _sig(wl, 530, 40))
         * (1.0 + rng.uniform(0.15, 0.45) * _ramp(wl, 600, 1500)))
    r = r * (1.0 - 0.07 * _g(wl, 1730, 25) - 0.07 * _g(wl, 2310, 35))
    return r * (1.0 - 0.2 * _sig(wl, 2370, 40))


def concrete(rng, wl):
    """Concrete / paving stone: moderately bright, rising in the visible, declining in the SWIR
    with a carbonate band at ~2340 nm."""
    level = rng.uniform(0.12, 0.24)
    r = level * (0.50 + 0.50 * _sig(wl, 540, 60)) * (1.0 + 0.25 * _ramp(wl, 700, 1300))
    r = r * (1.0 - rng.uniform(0.1, 0.3) * _ramp(wl, 1600, 2300))
    r = r * (1.0 - 0.06 * _g(wl, 1930, 50) - rng.uniform(0.08, 0.2) * _g(wl, 2340, 30))
    return r * (1.0 - rng.uniform(0.2, 0.4) * _sig(wl, 2330, 50))


def red_surface(rng, wl):
    """Sports surfaces (cinder court, tartan track): iron-oxide red like tile, with the polymer
    bands of a rubber binder when it is tartan."""
    tartan = rng.uniform(0.0, 1.0)
    s = rng.uniform(0.75, 1.1)
    r = (0.045 + 0.01 * _ramp(wl, 420, 560) + 0.15 * _sig(wl, 595, 18)
         + 0.03 * _ramp(wl, 650, 900) + 0.15 * _sig(wl, 1100, 120))
    r = r * (1.0 - 0.06 * _g(wl, 900, 70))
    r = r * (1.0 - tartan * (0.25 * _g(wl, 1730, 30) + 0.55 * _sig(wl, 2270, 25)))
    return s * r * (1.0 - 0.12 * _sig(wl, 2380, 40))


MATERIALS = {
    "red_tile": red_tile, "grey_concrete": grey_concrete, "metal_bright": metal_bright,
    "bitumen": bitumen, "asphalt": asphalt, "concrete": concrete, "red_surface": red_surface,
    "green_grass": green_grass, "dry_grass": dry_grass, "deciduous": deciduous, "conifer": conifer,
    "dry_soil": dry_soil, "moist_soil": moist_soil, "sand": sand, "clear": clear_water, "turbid": turbid_water,
}


def pick_variant_from(prior, rng):
    """Draw a variant name from a {name: weight} mapping."""
    names = list(prior)
    p = np.array([prior[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def pick_variant(class_value, rng):
    return pick_variant_from(VARIANTS[class_value], rng)


def sample_spectrum(class_value, rng, wl, variant=None):
    """One random spectrum (reflectance 0..1 on `wl`) of a class; returns (variant, spectrum)."""
    if variant is None:
        variant = pick_variant(class_value, rng)
    if variant not in VARIANTS[class_value]:
        raise ValueError(f"variant {variant!r} does not belong to class {class_value}")
    spec = MATERIALS[variant](rng, wl)
    return variant, np.clip(spec, 0.001, 0.95)


# ---------------------------------------------------------------------------------------------------
# sensor


def band_fwhm(centres_nm):
    """A plausible FWHM for each band: 1.1x the local band spacing (at least 2 nm)."""
    c = np.asarray(centres_nm, dtype=np.float64)
    if c.size < 2:
        return np.full(c.shape, 10.0)
    spacing = np.gradient(c)
    return np.maximum(np.round(1.1 * np.abs(spacing), 1), 2.0)


def band_response_matrix(wl_fine, centres_nm, fwhm_nm):
    """(n_bands, n_fine) Gaussian spectral response functions, rows summing to 1."""
    c = np.asarray(centres_nm, dtype=np.float64)[:, None]
    sd = np.asarray(fwhm_nm, dtype=np.float64)[:, None] / 2.354820045
    m = np.exp(-0.5 * ((wl_fine[None, :] - c) / sd) ** 2)
    return m / m.sum(axis=1, keepdims=True)


def class_mean_spectra(centres_nm, fwhm_nm=None, n_draws=200, seed=20240601):
    """Noise-free mean spectrum of each class (6, n_bands), averaged over `n_draws` variants drawn
    with the classes' prior variant weights. For checks and simple baselines."""
    centres = np.asarray(centres_nm, dtype=np.float64)
    fwhm = band_fwhm(centres) if fwhm_nm is None else np.asarray(fwhm_nm, dtype=np.float64)
    wl = fine_grid(centres.min() - 3 * fwhm.max(), centres.max() + 3 * fwhm.max())
    srf = band_response_matrix(wl, centres, fwhm)
    rng = np.random.default_rng(seed)
    out = np.zeros((6, centres.size))
    for k, cls in enumerate(range(1, 7)):
        acc = np.zeros(wl.size)
        for _ in range(n_draws):
            acc += sample_spectrum(cls, rng, wl)[1]
        out[k] = srf @ (acc / n_draws)
    return out


def variant_mean_spectra(centres_nm, fwhm_nm=None, n_draws=100, seed=20240602):
    """Noise-free mean spectrum of every material variant: returns (class_values (V,), names (V,),
    spectra (V, n_bands)). A per-material prototype set for checks and baselines."""
    centres = np.asarray(centres_nm, dtype=np.float64)
    fwhm = band_fwhm(centres) if fwhm_nm is None else np.asarray(fwhm_nm, dtype=np.float64)
    wl = fine_grid(centres.min() - 3 * fwhm.max(), centres.max() + 3 * fwhm.max())
    srf = band_response_matrix(wl, centres, fwhm)
    rng = np.random.default_rng(seed)
    values, names, protos = [], [], []
    for cls, variants in VARIANTS.items():
        for name in variants:
            acc = np.zeros(wl.size)
            for _ in range(n_draws):
                acc += sample_spectrum(cls, rng, wl, name)[1]
            values.append(cls)
            names.append(name)
            protos.append(srf @ (acc / n_draws))
    return np.array(values), names, np.array(protos)
