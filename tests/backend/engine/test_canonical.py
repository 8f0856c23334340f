"""The canonical spectral grid: same spectrum, different sensors → same features where both measure."""

import numpy as np
import pytest

from backend.engine import canonical
from backend.synth import sensors, spectra


def _observe(sensor, spectrum_fn, wl_fine):
    centres, fwhm = sensors.sensor_bands(sensor)
    srf = spectra.band_response_matrix(wl_fine, centres, fwhm)
    return centres, srf @ spectrum_fn(wl_fine)


def _veg(wl):
    return spectra.vegetation(wl)


@pytest.mark.parametrize("other", ["DESIS", "AVIRIS-classic", "CASI-1500-48"])
def test_shape_features_agree_across_sensors(other):
    wl = spectra.fine_grid()
    feats = {}
    for sensor in ("EnMAP", other):
        centres, values = _observe(sensor, _veg, wl)
        weights, covered = canonical.resampling(centres, ~sensors.bad_bands(centres))
        feats[sensor] = (canonical.band_features(values[:, None, None].astype(np.float32), weights, covered)[:, 0, 0],
                         covered)
    both = feats["EnMAP"][1] & feats[other][1]
    assert both.sum() >= 20
    a, b = feats["EnMAP"][0][:canonical.N_BINS][both], feats[other][0][:canonical.N_BINS][both]
    # brightness is a VNIR mean, so shapes agree when both sensors cover 450-900 nm
    assert np.allclose(a, b, rtol=0.12, atol=0.03)


def test_gaps_and_range_are_masked_not_zero_filled():
    centres, _ = sensors.sensor_bands("EnMAP")
    good = ~sensors.bad_bands(centres)
    weights, covered = canonical.resampling(centres, good)
    grid = canonical.GRID_NM
    assert not covered[(grid > 1370) & (grid < 1430)].any()      # deep water-vapour window
    assert not covered[grid > 2470].any()                          # beyond the last good band
    assert covered[(grid >= 420) & (grid <= 1300)].all()
    assert np.allclose(weights[covered].sum(axis=1), 1.0, atol=1e-5)
    assert (weights[:, ~good] == 0).all()
    cube = np.full((centres.size, 2, 3), 0.2, np.float32)
    f = canonical.band_features(cube, weights, covered)
    mask = f[canonical.N_BINS + 1:, 0, 0]
    assert np.array_equal(mask.astype(bool), covered)
    assert (f[:canonical.N_BINS][~covered] == 0).all()
    assert np.allclose(f[:canonical.N_BINS][covered], 1.0, atol=1e-5)   # a flat spectrum has a flat shape


def test_brightness_only_moves_the_log_channel():
    centres, _ = sensors.sensor_bands("PRISMA")
    weights, covered = canonical.resampling(centres)
    wl = spectra.fine_grid()
    values = (spectra.band_response_matrix(wl, centres, np.full(centres.shape, 12.0)) @ _veg(wl)).astype(np.float32)
    f1 = canonical.band_features(values[:, None, None], weights, covered)[:, 0, 0]
    f2 = canonical.band_features(3.0 * values[:, None, None], weights, covered)[:, 0, 0]
    lb = canonical.N_BINS
    assert np.allclose(np.delete(f1, lb), np.delete(f2, lb), atol=1e-5)
    assert f2[lb] - f1[lb] == pytest.approx(np.log10(3.0), abs=1e-5)


def test_a_sensor_outside_the_grid_covers_nothing():
    weights, covered = canonical.resampling([3000.0, 3100.0, 3200.0])
    assert not covered.any()
    assert not canonical.band_features(np.ones((3, 1, 1), np.float32), weights, covered).any()


def test_bins_the_model_never_saw_measured_are_masked():
    centres, _ = sensors.sensor_bands("AisaFENIX")      # has good bands up to 2446 nm
    weights, covered = canonical.resampling(centres, ~sensors.bad_bands(centres))
    assert covered[canonical.GRID_NM == 2460].all()
    trained = np.where(canonical.GRID_NM >= 2450, 0.0, 0.7)   # no pretraining sensor measured past 2450 nm
    kept, dropped = canonical.restrict_to_trained(covered, trained)
    assert list(dropped) == [w for w in canonical.GRID_NM[covered] if w >= 2450]
    assert not kept[canonical.GRID_NM >= 2450].any() and kept.sum() == covered.sum() - len(dropped)


def _absorbed(wl, depths):
    """A smooth reflectance with the atmosphere's narrow absorptions cut into it (depth 0..1 at the centre)."""
    out = spectra.vegetation(wl)
    for (_, centre, _, _), d in zip(canonical.ABSORPTIONS, depths):
        out = out * (1 - d * np.exp(-0.5 * ((wl - centre) / 12.0) ** 2))
    return out


def test_radiance_is_told_by_the_atmospheres_absorptions_not_by_its_shape():
    wl = spectra.fine_grid()
    centres, fwhm = sensors.sensor_bands("AVIRIS-classic")
    srf = spectra.band_response_matrix(wl, centres, fwhm)
    clean = canonical.absorption_depths(centres, srf @ spectra.vegetation(wl))
    assert set(clean) == {"oxygen 760 nm", "water vapour 940 nm", "water vapour 1140 nm"}
    assert canonical.radiance_evidence(clean) is None
    radiance = canonical.absorption_depths(centres, srf @ _absorbed(wl, (0.6, 0.7, 0.7)))
    assert "oxygen 760 nm" in canonical.radiance_evidence(radiance)
    # water vapour left over in a reflectance product (one band deep, oxygen corrected) is no evidence
    leftover = canonical.absorption_depths(centres, srf @ _absorbed(wl, (0.0, 0.6, 0.0)))
    assert leftover["water vapour 940 nm"] > 0.3 and canonical.radiance_evidence(leftover) is None
    # a sensor that cannot see the bands says nothing
    assert canonical.absorption_depths(np.linspace(400, 700, 30), np.ones(30)) == {}
