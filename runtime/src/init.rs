//! Deterministic parameter initialization, for running or training a model without a weights
//! file.
//!
//! A parameter's values depend only on the global seed and the parameter's name, never on the
//! order params are initialized in or on the platform, so adding a layer does not change the
//! initial values of the others, and a run can be reproduced from its seed alone. To keep that
//! promise across dependency upgrades the name hash (FNV-1a) and the conversion from random
//! bits to floats are written here rather than taken from `std` or `rand`, whose outputs may
//! change between releases; only ChaCha8's keystream, which is a fixed algorithm, is borrowed.

use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::tensor::element_count;
use modelc_compiler::interp::{Tensor, TensorData};
use modelc_compiler::ir::{DType, Init};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The most elements one parameter may have (2^31, 8 GiB of f32): a guard against a shape typo
/// turning into an allocation that takes the machine down.
pub const MAXIMUM_ELEMENT_COUNT: usize = 1 << 31;

/// Builds the initial value of the parameter `name` of the given dtype and shape.
///
/// Deterministic in (`seed`, `name`). Random initializers need an f32 parameter; an i64 or
/// bool parameter accepts only `Zeros`, `Ones` and an integral (for bool, 0 or 1) `Constant`,
/// and anything else is a `weights-dtype` diagnostic. More than [`MAXIMUM_ELEMENT_COUNT`]
/// elements is a `tensor-too-large` diagnostic, raised before anything is allocated.
pub fn initialize(
    name: &str,
    init: &Init,
    dtype: DType,
    shape: &[usize],
    seed: u64,
) -> Result<Tensor, Diagnostic> {
    let count = element_count(shape).filter(|&count| count <= MAXIMUM_ELEMENT_COUNT).ok_or_else(|| {
        Diagnostic::error(
            "tensor-too-large",
            format!("the parameter `{name}` of shape {shape:?} has more than {MAXIMUM_ELEMENT_COUNT} elements"),
        )
        .with_help("check the layer sizes that produce this shape")
    })?;
    let data = match dtype {
        DType::F32 => TensorData::F32(float_values(name, init, shape, count, seed)),
        DType::I64 => TensorData::I64(vec![integer_constant(name, init)?; count]),
        DType::Bool => TensorData::Bool(vec![bool_constant(name, init)?; count]),
    };
    Ok(Tensor {
        shape: shape.to_vec(),
        data,
    })
}

fn float_values(name: &str, init: &Init, shape: &[usize], count: usize, seed: u64) -> Vec<f32> {
    let (fan_in, fan_out) = fans(shape);
    let mut rng = rng_for(seed, name);
    let mut uniform = |low: f64, high: f64| -> Vec<f32> {
        (0..count)
            .map(|_| (low + (high - low) * unit_interval(&mut rng)) as f32)
            .collect()
    };
    match *init {
        Init::Zeros => vec![0.0; count],
        Init::Ones => vec![1.0; count],
        Init::Constant(value) => vec![value as f32; count],
        Init::Uniform { low, high } => uniform(low, high),
        Init::KaimingUniform { a } => {
            let bound = (2.0 / (1.0 + a * a)).sqrt() * (3.0 / fan_in).sqrt();
            uniform(-bound, bound)
        }
        Init::XavierUniform => {
            let bound = (6.0 / (fan_in + fan_out)).sqrt();
            uniform(-bound, bound)
        }
        Init::Normal { mean, std } => normal_values(&mut rng, count, mean, std),
        Init::KaimingNormal => normal_values(&mut rng, count, 0.0, (2.0 / fan_in).sqrt()),
        Init::XavierNormal => {
            normal_values(&mut rng, count, 0.0, (2.0 / (fan_in + fan_out)).sqrt())
        }
    }
}

/// PyTorch's fans: `fan_in = shape[1] * receptive field`, `fan_out = shape[0] * receptive
/// field`, where the receptive field is the product of `shape[2..]` (the kernel size of a
/// convolution, 1 for a linear weight). A rank-1 parameter has both fans equal to its length,
/// and a scalar has fans of 1, so that every initializer is defined for every shape. A zero
/// fan only occurs with a zero dim, where there are no elements to draw.
fn fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        [length] => (*length as f64, *length as f64),
        [outputs, inputs, kernel @ ..] => {
            let receptive_field: f64 = kernel.iter().map(|&dim| dim as f64).product();
            (
                *inputs as f64 * receptive_field,
                *outputs as f64 * receptive_field,
            )
        }
    }
}

/// A generator keyed by both the global seed and the name: the 32-byte ChaCha key holds the
/// seed and the name's hash side by side, so distinct (seed, hash) pairs give distinct streams.
fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a_64(name.as_bytes()).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// FNV-1a, 64-bit: tiny, and its output is fixed by its definition.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// A uniform draw from [0, 1) with 53 random bits, the full precision of an f64.
fn unit_interval(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Normal draws by the Box-Muller transform, using both values of each pair.
fn normal_values(rng: &mut ChaCha8Rng, count: usize, mean: f64, std: f64) -> Vec<f32> {
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - unit_interval(rng)).ln()).sqrt();
        let angle = std::f64::consts::TAU * unit_interval(rng);
        values.push((mean + std * radius * angle.cos()) as f32);
        if values.len() < count {
            values.push((mean + std * radius * angle.sin()) as f32);
        }
    }
    values
}

fn non_float_error(name: &str, init: &Init, dtype: DType, reason: &str) -> Diagnostic {
    Diagnostic::error(
        "weights-dtype",
        format!("the {dtype} parameter `{name}` cannot be initialized with {init}: {reason}"),
    )
    .with_help("integer and bool parameters take zeros(), ones() or an integral constant(...)")
}

fn integer_constant(name: &str, init: &Init) -> Result<i64, Diagnostic> {
    match *init {
        Init::Zeros => Ok(0),
        Init::Ones => Ok(1),
        // 2^63 is exactly representable as an f64, so the range check is exact.
        Init::Constant(value)
            if value.fract() == 0.0 && value >= -(2f64.powi(63)) && value < 2f64.powi(63) =>
        {
            Ok(value as i64)
        }
        Init::Constant(_) => Err(non_float_error(
            name,
            init,
            DType::I64,
            "the constant is not a 64-bit integer",
        )),
        _ => Err(non_float_error(
            name,
            init,
            DType::I64,
            "random initializers produce floats",
        )),
    }
}

fn bool_constant(name: &str, init: &Init) -> Result<bool, Diagnostic> {
    match *init {
        Init::Zeros => Ok(false),
        Init::Ones => Ok(true),
        Init::Constant(value) if value == 0.0 || value == 1.0 => Ok(value == 1.0),
        Init::Constant(_) => Err(non_float_error(
            name,
            init,
            DType::Bool,
            "the constant is neither 0 nor 1",
        )),
        _ => Err(non_float_error(
            name,
            init,
            DType::Bool,
            "random initializers produce floats",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str, init: &Init, shape: &[usize], seed: u64) -> Vec<f32> {
        initialize(name, init, DType::F32, shape, seed)
            .expect("initialize")
            .as_f32()
            .expect("f32")
            .to_vec()
    }

    fn mean_and_std(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, variance.sqrt())
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn same_seed_and_name_give_identical_tensors_and_either_change_gives_different_ones() {
        let init = Init::KaimingUniform { a: 5f64.sqrt() };
        let first = values("fc1.weight", &init, &[64, 32], 7);
        assert_eq!(first, values("fc1.weight", &init, &[64, 32], 7));
        assert_ne!(first, values("fc2.weight", &init, &[64, 32], 7));
        assert_ne!(first, values("fc1.weight", &init, &[64, 32], 8));
        // The normal path is deterministic too.
        let normal = Init::Normal {
            mean: 0.0,
            std: 1.0,
        };
        assert_eq!(
            values("emb", &normal, &[100], 1),
            values("emb", &normal, &[100], 1)
        );
        assert_ne!(
            values("emb", &normal, &[100], 1),
            values("emb2", &normal, &[100], 1)
        );
    }

    #[test]
    fn values_are_pinned_so_a_dependency_change_cannot_silently_alter_them() {
        // Change detector: ChaCha8's keystream, the key layout, FNV-1a and the bits-to-float
        // mapping are all fixed, so these values must never move. If they do, saved
        // experiments stop being reproducible from their seed.
        let pinned = values(
            "layer.weight",
            &Init::Uniform {
                low: 0.0,
                high: 1.0,
            },
            &[4],
            42,
        );
        assert_eq!(pinned, PINNED_UNIFORM_VALUES);
    }

    const PINNED_UNIFORM_VALUES: [f32; 4] = [0.38053688, 0.7249329, 0.3525125, 0.4290778];

    #[test]
    fn kaiming_uniform_respects_its_bound_and_has_the_right_moments() {
        // A conv weight: fan_in = 16 * 3 * 3 = 144.
        let shape = [256, 16, 3, 3];
        let a = 5f64.sqrt();
        let bound = (2.0 / (1.0 + a * a)).sqrt() * (3.0 / 144f64).sqrt();
        let drawn = values("conv.weight", &Init::KaimingUniform { a }, &shape, 3);
        assert_eq!(drawn.len(), 256 * 144);
        assert!(
            drawn.iter().all(|&v| f64::from(v.abs()) <= bound),
            "a value is outside [-{bound}, {bound}]"
        );
        let (mean, std) = mean_and_std(&drawn);
        // With 36864 draws the standard error of the mean is about 0.003 * bound and the std's
        // relative error about 0.3%, so these tolerances are over 5 standard errors wide.
        assert!(mean.abs() < 0.02 * bound, "mean {mean}");
        let expected_std = bound / 3f64.sqrt();
        assert!(
            (std / expected_std - 1.0).abs() < 0.02,
            "std {std}, expected {expected_std}"
        );
        // The values actually spread to the ends of the interval.
        let largest = drawn.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(f64::from(largest) > 0.99 * bound);
    }

    #[test]
    fn normal_initializers_have_the_right_moments() {
        // Tolerances: 2^16 draws give a standard error of 0.4% of std for the mean and about
        // 0.3% for the std; 2% is well over 5 standard errors.
        let cases = [
            (
                Init::KaimingNormal,
                [256usize, 256],
                0.0,
                (2.0f64 / 256.0).sqrt(),
            ),
            (Init::XavierNormal, [128, 512], 0.0, (2.0f64 / 640.0).sqrt()),
            (
                Init::Normal {
                    mean: 3.0,
                    std: 0.5,
                },
                [256, 256],
                3.0,
                0.5,
            ),
        ];
        for (init, shape, expected_mean, expected_std) in cases {
            let drawn = values("w", &init, &shape, 11);
            let (mean, std) = mean_and_std(&drawn);
            assert!(
                (mean - expected_mean).abs() < 0.02 * expected_std,
                "{init}: mean {mean}"
            );
            assert!(
                (std / expected_std - 1.0).abs() < 0.02,
                "{init}: std {std}, expected {expected_std}"
            );
            // A normal sample this size has about 0.27% of values beyond 3 std and almost
            // none beyond 6.
            let beyond_three = drawn
                .iter()
                .filter(|&&v| (f64::from(v) - expected_mean).abs() > 3.0 * expected_std)
                .count();
            let fraction = beyond_three as f64 / drawn.len() as f64;
            assert!(
                (0.0015..0.004).contains(&fraction),
                "{init}: {fraction} beyond 3 std"
            );
        }
    }

    #[test]
    fn xavier_uniform_and_uniform_respect_their_bounds() {
        let bound = (6.0f64 / (300.0 + 100.0)).sqrt();
        let drawn = values("w", &Init::XavierUniform, &[100, 300], 5);
        assert!(drawn.iter().all(|&v| f64::from(v.abs()) <= bound));
        assert!(
            drawn.iter().any(|&v| f64::from(v) > 0.9 * bound)
                && drawn.iter().any(|&v| f64::from(v) < -0.9 * bound)
        );

        let drawn = values(
            "w",
            &Init::Uniform {
                low: 2.0,
                high: 3.0,
            },
            &[10000],
            5,
        );
        assert!(drawn.iter().all(|&v| (2.0..=3.0).contains(&v)));
        let (mean, _) = mean_and_std(&drawn);
        assert!((mean - 2.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn constant_initializers_fill_every_dtype() {
        assert_eq!(values("b", &Init::Zeros, &[3], 0), vec![0.0; 3]);
        assert_eq!(values("b", &Init::Ones, &[2, 2], 0), vec![1.0; 4]);
        assert_eq!(values("b", &Init::Constant(0.25), &[], 0), vec![0.25]);
        let integer = initialize("n", &Init::Constant(-4.0), DType::I64, &[2], 0).unwrap();
        assert_eq!(integer, Tensor::from_i64(vec![2], vec![-4, -4]).unwrap());
        let flags = initialize("m", &Init::Ones, DType::Bool, &[3], 0).unwrap();
        assert_eq!(flags, Tensor::from_bool(vec![3], vec![true; 3]).unwrap());
        let cleared = initialize("m", &Init::Constant(0.0), DType::Bool, &[1], 0).unwrap();
        assert_eq!(cleared, Tensor::from_bool(vec![1], vec![false]).unwrap());
    }

    #[test]
    fn random_or_non_integral_initializers_on_integer_and_bool_params_are_rejected() {
        for (init, dtype) in [
            (Init::KaimingUniform { a: 0.0 }, DType::I64),
            (
                Init::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
                DType::Bool,
            ),
            (Init::Constant(0.5), DType::I64),
            (Init::Constant(1e300), DType::I64),
            (Init::Constant(f64::NAN), DType::I64),
            (Init::Constant(2.0), DType::Bool),
        ] {
            let error = initialize("steps", &init, dtype, &[2], 0).expect_err("must be rejected");
            assert_eq!(error.code, "weights-dtype", "{init} on {dtype}");
            assert!(error.message.contains("steps"));
        }
    }

    #[test]
    fn oversized_and_degenerate_shapes() {
        let too_many = initialize("huge", &Init::Zeros, DType::F32, &[1 << 16, 1 << 16], 0)
            .expect_err("2^32 elements");
        assert_eq!(too_many.code, "tensor-too-large");
        let overflowing = initialize("huge", &Init::Zeros, DType::F32, &[usize::MAX, 2], 0)
            .expect_err("overflow");
        assert_eq!(overflowing.code, "tensor-too-large");
        // Zero dims give empty tensors even though a fan is zero (and a bound infinite).
        for init in [
            Init::KaimingUniform { a: 0.0 },
            Init::KaimingNormal,
            Init::XavierUniform,
            Init::XavierNormal,
        ] {
            assert_eq!(values("e", &init, &[5, 0], 1), Vec::<f32>::new());
            assert_eq!(values("e", &init, &[0, 5, 3], 1), Vec::<f32>::new());
            assert_eq!(values("s", &init, &[], 1).len(), 1);
            assert_eq!(values("v", &init, &[7], 1).len(), 7);
        }
        // An odd count uses half of the last Box-Muller pair.
        assert_eq!(
            values(
                "odd",
                &Init::Normal {
                    mean: 0.0,
                    std: 1.0
                },
                &[3, 3],
                1
            )
            .len(),
            9
        );
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[512, 784]), (784.0, 512.0));
        assert_eq!(fans(&[16, 8, 3, 3]), (72.0, 144.0));
        assert_eq!(fans(&[10]), (10.0, 10.0));
        assert_eq!(fans(&[]), (1.0, 1.0));
    }
}
