//! The analytic prior: P(demand over the horizon > stock available before it ends).
//!
//! Demand over the horizon is modelled as a gamma variable with the estimated mean and a variance
//! of `dispersion × mean` — the continuous cousin of the negative binomial, which also suits
//! fractional quantities (goods sold by weight). Its tail uses the Wilson–Hilferty cube-root
//! normal approximation: one `cbrt` and one `erfc`, cheap enough to run on every event.

/// Probability that demand with `mean` and dispersion index `dispersion` (variance / mean ≥ 1)
/// exceeds `available`. Always in [0, 1].
pub fn stockout_prior(mean: f64, dispersion: f64, available: f64) -> f64 {
    if available.is_nan() || available <= 0.0 {
        return 1.0; // nothing on hand or inbound: out already (NaN-safe).
    }
    if mean.is_nan() || mean <= 1e-9 {
        return 0.0;
    }
    let theta = dispersion.max(1.0);
    let k = mean / theta; // gamma shape
    let c = 1.0 / (9.0 * k);
    let z = ((available / mean).cbrt() - (1.0 - c)) / c.sqrt();
    // P(X > a) = 1 - Φ(z) = erfc(z / √2) / 2
    (0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert_eq!(stockout_prior(5.0, 1.0, 0.0), 1.0);
        assert_eq!(stockout_prior(5.0, 1.0, -3.0), 1.0);
        assert_eq!(stockout_prior(0.0, 1.0, 3.0), 0.0);
        assert_eq!(stockout_prior(f64::NAN, 1.0, 3.0), 0.0);
    }

    #[test]
    fn monotone_and_sensible() {
        // More stock, less risk; more demand, more risk.
        let a = stockout_prior(10.0, 1.0, 5.0);
        let b = stockout_prior(10.0, 1.0, 10.0);
        let c = stockout_prior(10.0, 1.0, 20.0);
        assert!(a > b && b > c, "{a} {b} {c}");
        assert!(a > 0.9 && c < 0.01, "{a} {c}");
        assert!((b - 0.5).abs() < 0.1, "median near the mean: {b}");
        // Over-dispersion fattens the tail.
        assert!(stockout_prior(10.0, 5.0, 20.0) > c);
    }
}
