"""The IIR example recovers coefficients that scipy.signal.lfilter generated."""

from seqapps.iir_example import fit_iir_filter


def test_fit_recovers_iir_coefficients():
    result = fit_iir_filter(w_x=0.5, w_s=-0.6, steps=32, sequences=128, epochs=30, seed=1)
    fitted = result["fitted"]
    assert abs(fitted["w_x"] - 0.5) < 0.02
    assert abs(fitted["w_s"] + 0.6) < 0.02
    assert abs(fitted["b"]) < 0.02
