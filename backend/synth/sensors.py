"""Imaging spectrometers to simulate: band centres and FWHM of real instruments (approximated from
their published ranges and sampling) plus random ones, split into the sensors pretraining sees and the
sensors kept back to test the generic model on band sets it never saw.

Each row: (name, [(first nm, last nm, sampling nm, FWHM nm), …] per detector, split).
"""

import numpy as np

SENSORS = (
    ("EnMAP", [(420, 1000, 6.5, 8.0), (900, 2450, 10.0, 10.0)], "train"),
    ("PRISMA", [(400, 1010, 12.0, 13.0), (920, 2505, 12.0, 13.0)], "train"),
    ("AVIRIS-classic", [(380, 2500, 9.6, 10.0)], "train"),
    ("HyMap", [(450, 890, 15.0, 16.0), (890, 1350, 15.0, 16.0), (1400, 1800, 13.0, 15.0), (1950, 2480, 17.0, 18.0)],
     "train"),
    ("CASI-1500-48", [(380, 1050, 14.3, 14.3)], "train"),
    ("CASI-144", [(380, 1050, 4.7, 5.0)], "train"),
    ("APEX", [(400, 950, 6.0, 7.0), (950, 2450, 12.0, 12.0)], "train"),
    # held out: never simulated in pretraining
    ("DESIS", [(402, 1000, 2.55, 3.5)], "held_out"),
    ("AisaFENIX", [(380, 970, 4.5, 4.5), (970, 2500, 12.0, 12.0)], "held_out"),
    ("SAMSON-like", [(401, 899, 3.2, 3.5)], "held_out"),
)

# deep water-vapour windows: bands centred here are flagged bad (bbl = 0), as real products do
BAD_WINDOWS_NM = ((1340.0, 1455.0), (1790.0, 1965.0), (2450.0, 2600.0))


def sensor_bands(name):
    """(centres_nm, fwhm_nm) of a named sensor."""
    for row_name, detectors, _ in SENSORS:
        if row_name == name:
            centres, fwhm = [], []
            for lo, hi, step, width in detectors:
                c = np.arange(lo, hi + 1e-6, step)
                centres.append(c)
                fwhm.append(np.full(c.shape, float(width)))
            centres, fwhm = np.concatenate(centres), np.concatenate(fwhm)
            order = np.argsort(centres, kind="stable")
            return np.round(centres[order], 2), fwhm[order]
    raise KeyError(f"unknown sensor {name!r}")


def sensor_names(split):
    return [name for name, _, s in SENSORS if s == split]


def random_sensor(rng):
    """A random spectrometer: VNIR only (like many airborne and UAV cameras) or VNIR–SWIR, 3–25 nm
    sampling, FWHM about the sampling. Named after its parameters."""
    lo = rng.uniform(380, 460)
    hi = rng.uniform(850, 1050) if rng.random() < 0.4 else rng.uniform(1700, 2500)
    step = float(np.exp(rng.uniform(np.log(3.0), np.log(25.0))))
    centres = np.arange(lo, hi, step)
    fwhm = np.full(centres.shape, step * rng.uniform(0.9, 1.4))
    return f"random-{lo:.0f}-{hi:.0f}-{step:.1f}nm", np.round(centres, 2), fwhm


def bad_bands(centres_nm):
    c = np.asarray(centres_nm)
    bad = np.zeros(c.shape, bool)
    for lo, hi in BAD_WINDOWS_NM:
        bad |= (c >= lo) & (c <= hi)
    return bad
