//! Seeded shuffling, the train/validation split and each epoch's order.
//!
//! A permutation is a Fisher–Yates shuffle of `0..count` (from the last position down, each
//! swapped with a uniform position at or below it) driven by a ChaCha8 generator seeded with
//! `ChaCha8Rng::seed_from_u64(seed)` on a fixed stream. Uniform draws below a bound use
//! Lemire's multiply-and-reject method on `next_u64`, written here so that the result depends
//! only on the ChaCha8 stream, not on `rand`'s sampling code.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The stream of the train/validation split.
pub const SPLIT_STREAM: u64 = 0;
/// The stream of the epochs' orders.
pub const EPOCH_STREAM: u64 = 1;

/// A generator for `seed` on `stream`.
pub(crate) fn generator(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform draw from `0..bound`; `bound` must be positive (0 gives 0).
pub(crate) fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    // Lemire, "Fast random integer generation in an interval" (2019): the high half of
    // `x * bound` is uniform once the low half is at least 2^64 mod bound.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// A permutation of `0..count`, determined by `seed` and `stream`.
pub fn permutation(count: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = generator(seed, stream);
    let mut order: Vec<usize> = (0..count).collect();
    for last in (1..count).rev() {
        let other = below(&mut rng, last as u64 + 1) as usize;
        order.swap(last, other);
    }
    order
}

/// The examples' indices, split in two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

/// How many of `count` examples train for a `split` fraction: `round(count * fraction)`,
/// kept within `1..count` when `count >= 2` so that neither part is empty (a single example
/// trains). A fraction outside [0, 1] or NaN is clamped to it.
pub fn train_count(count: usize, fraction: f64) -> usize {
    if count == 0 {
        return 0;
    }
    if count == 1 {
        return 1;
    }
    let fraction = if fraction.is_nan() {
        1.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let rounded = (count as f64 * fraction).round() as usize;
    rounded.clamp(1, count - 1)
}

/// Shuffles `0..count` once with `seed` (on [`SPLIT_STREAM`]); the first [`train_count`]
/// indices train and the rest validate, each in the shuffled order.
pub fn split_indices(count: usize, fraction: f64, seed: u64) -> Split {
    let mut order = permutation(count, seed, SPLIT_STREAM);
    let validation = order.split_off(train_count(count, fraction));
    Split {
        train: order,
        validation,
    }
}

/// The order of the examples (positions in the training set) in epoch `epoch`: a
/// permutation of `0..count` seeded with `seed + epoch` (wrapping) on [`EPOCH_STREAM`], so
/// every epoch is shuffled anew and any epoch can be replayed alone.
pub fn epoch_order(count: usize, seed: u64, epoch: u64) -> Vec<usize> {
    permutation(count, seed.wrapping_add(epoch), EPOCH_STREAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_permutations_and_depend_on_seed_and_stream() {
        for count in [0, 1, 2, 7, 100] {
            let mut sorted = permutation(count, 42, 0);
            sorted.sort_unstable();
            assert_eq!(sorted, (0..count).collect::<Vec<_>>());
        }
        assert_eq!(permutation(50, 1, 0), permutation(50, 1, 0));
        assert_ne!(permutation(50, 1, 0), permutation(50, 2, 0));
        assert_ne!(permutation(50, 1, 0), permutation(50, 1, 1));
    }

    /// The exact orders are part of the reproducibility promise: a change here changes every
    /// seeded training run.
    #[test]
    fn permutation_is_pinned() {
        assert_eq!(permutation(10, 0, SPLIT_STREAM), PINNED_SPLIT);
        assert_eq!(epoch_order(10, 0, 3), PINNED_EPOCH);
    }

    const PINNED_SPLIT: [usize; 10] = [6, 1, 8, 3, 2, 9, 0, 5, 4, 7];
    const PINNED_EPOCH: [usize; 10] = [5, 8, 3, 1, 0, 9, 4, 6, 2, 7];

    #[test]
    fn below_is_uniform_enough_and_in_range() {
        let mut rng = generator(7, 0);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            let value = below(&mut rng, 6);
            counts[value as usize] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
        assert_eq!(below(&mut rng, 1), 0);
        assert_eq!(below(&mut rng, 0), 0);
        assert!(below(&mut rng, u64::MAX) < u64::MAX);
    }

    #[test]
    fn train_count_rounds_and_keeps_both_parts() {
        assert_eq!(train_count(1797, 0.8), 1438);
        assert_eq!(train_count(569, 0.8), 455);
        assert_eq!(train_count(100, 0.29), 29);
        assert_eq!(train_count(10, 0.01), 1);
        assert_eq!(train_count(10, 0.999), 9);
        assert_eq!(train_count(1, 0.5), 1);
        assert_eq!(train_count(0, 0.5), 0);
        assert_eq!(train_count(10, f64::NAN), 9);
        assert_eq!(train_count(10, -3.0), 1);
    }

    #[test]
    fn split_partitions_the_examples() {
        let split = split_indices(101, 0.8, 9);
        assert_eq!(split.train.len(), 81);
        assert_eq!(split.validation.len(), 20);
        let mut all: Vec<usize> = split
            .train
            .iter()
            .chain(&split.validation)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
        assert_eq!(split, split_indices(101, 0.8, 9));
        assert_ne!(split, split_indices(101, 0.8, 10));
        // Shuffled, not the first 81 in order.
        assert_ne!(split.train, (0..81).collect::<Vec<_>>());
    }

    #[test]
    fn each_epoch_has_its_own_reproducible_order() {
        let first = epoch_order(64, 5, 0);
        let second = epoch_order(64, 5, 1);
        assert_ne!(first, second);
        assert_eq!(first, epoch_order(64, 5, 0));
        // The epoch order is not the split's permutation of the same seed.
        assert_ne!(first, permutation(64, 5, SPLIT_STREAM));
        // Wrapping: the last seed's next epoch is seed 0's first.
        assert_eq!(epoch_order(8, u64::MAX, 1), epoch_order(8, 0, 0));
    }
}
