//! Hyper-parameter search for the `sweep { ... }` block of a `train` block: which trials to
//! run, in which order. Running them is the caller's job (`modelc sweep` trains each with
//! [`super::train`]); this module is pure and deterministic given the seed and the objectives
//! it is told.
//!
//! A *trial* is one concrete value per axis ([`Trial`]); [`apply`] writes it into a copy of
//! the block's [`TrainConfig`]. A [`Searcher`] proposes the trials one at a time:
//!
//! - **Grid** (`method = grid`, the default): every combination of the axes' lists, as nested
//!   loops in the order written (the first axis outermost, the last one varying fastest). The
//!   checker already rejects a distribution on a grid axis (`invalid-setting`); a hand-built
//!   spec that has one is refused by [`Searcher::new`]. A trial count given with
//!   `--trials` keeps the first combinations.
//! - **Random** (`random(trials)`): each axis drawn independently: a list uniformly by index,
//!   `uniform(a, b)` on [a, b), `log_uniform(a, b)` as `exp` of a uniform on [ln a, ln b),
//!   `int_uniform(a, b)` uniformly among the whole numbers a..=b.
//! - **Bayesian** (`bayesian(trials)`): the tree-structured Parzen estimator (TPE) of Bergstra,
//!   Bardenet, Bengio and Kégl, "Algorithms for Hyper-Parameter Optimization" (NeurIPS 2011),
//!   with independent axes as in Hyperopt and Optuna's default. The first
//!   [`startup_trials`] trials (`max(5, trials / 4)`) are random. After that, for each new
//!   trial, the finished trials are sorted by objective (a failed trial counts as the worst)
//!   and split at the [`GAMMA`] = 0.25 quantile: the best `ceil(0.25 n)` are *good*, the rest
//!   *bad*. Per axis, in a transformed space where the axis is roughly uniform, a Parzen
//!   density `l(x)` is fitted to the good values and `g(x)` to the bad ones:
//!   - continuous axes (`uniform` as is, `log_uniform` in `ln x`, `int_uniform` on
//!     [a - 0.5, b + 0.5] rounded afterwards): an equal-weight mixture of Gaussians truncated
//!     to the range, one per observation plus a prior component at the middle of the range
//!     with the range as its width. An observation's width is the larger distance to its
//!     neighbours among the sorted observations and the prior's centre (Hyperopt's adaptive
//!     Parzen estimator), clipped to [range / min(100, n + 1), range];
//!   - lists: the categorical distribution over indices with a prior of total weight one
//!     spread evenly, `p(k) = (count(k) + 1 / K) / (n + 1)` (categorical smoothing).
//!
//!   [`CANDIDATES`] = 24 candidate trials are drawn from `l` (each axis independently), and
//!   the one maximizing `l(x) / g(x)` — the product over axes, summed as logs — is proposed
//!   (the first on a tie). Maximizing this ratio maximizes the expected improvement under the
//!   TPE model.
//!
//! The random draws come from one ChaCha8 stream seeded with the sweep seed on
//! [`SWEEP_STREAM`] (the same generator and bounded draws as the data order of
//! [`crate::data::order`]), so a sweep with the same seed proposes the same trials as long as
//! the objectives it is told are the same (the CPU backend trains deterministically).
//!
//! The objective ([`Objective`]) is the final epoch's validation accuracy (maximized) when the
//! block reports `metrics = [accuracy]` and its loss has an accuracy, else the final epoch's
//! validation loss (minimized). Internally every objective is turned into a value to minimize
//! ([`Objective::minimized`]).

use super::EpochMetrics;
use crate::data::order::{below, generator};
use modelc_compiler::check::settings::{
    Metric, OptimizerSpec, SearchMethod, SweepAxis, SweepSpec, SweepTarget, SweepValues,
    TrainConfig,
};
use modelc_compiler::train::has_accuracy;
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

/// The ChaCha8 stream of the sweep's draws (the data uses 0, 1 and 2).
pub const SWEEP_STREAM: u64 = 3;
/// The quantile of the finished trials that TPE calls good.
pub const GAMMA: f64 = 0.25;
/// How many candidates TPE draws from the good density per trial.
pub const CANDIDATES: usize = 24;

/// How many of a Bayesian sweep's `trials` are drawn at random before TPE takes over:
/// `max(5, trials / 4)`, at most `trials`.
pub fn startup_trials(trials: usize) -> usize {
    (trials / 4).max(5).min(trials)
}

/// One value per axis, in the sweep's axis order. Integer axes (`batch`, `epochs`) hold whole
/// numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub values: Vec<(SweepTarget, f64)>,
}

impl Trial {
    /// The value of `target`, when it is an axis.
    pub fn get(&self, target: SweepTarget) -> Option<f64> {
        self.values
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, value)| *value)
    }
}

/// `config` with the trial's values written in: the train settings (`batch`, `epochs`, `l1`,
/// `l2`, `split`) and the optimizer's arguments (`lr`, `weight_decay`, `momentum`, `beta1`,
/// `beta2`). An optimizer argument that the block's optimizer does not take (the checker
/// rejects such axes) is ignored. The result has no sweep.
pub fn apply(config: &TrainConfig, trial: &Trial) -> TrainConfig {
    let mut out = config.clone();
    out.sweep = None;
    let whole = |value: f64| value.round().max(1.0) as usize;
    for &(target, value) in &trial.values {
        match target {
            SweepTarget::Batch => out.batch = whole(value),
            SweepTarget::Epochs => out.epochs = whole(value),
            SweepTarget::L1 => out.l1 = value,
            SweepTarget::L2 => out.l2 = value,
            SweepTarget::Split => out.split = value,
            SweepTarget::Lr => match &mut out.optimizer {
                OptimizerSpec::Sgd { lr, .. }
                | OptimizerSpec::Adam { lr, .. }
                | OptimizerSpec::AdamW { lr, .. }
                | OptimizerSpec::RmsProp { lr, .. } => *lr = value,
            },
            SweepTarget::WeightDecay => {
                if let OptimizerSpec::AdamW { weight_decay, .. } = &mut out.optimizer {
                    *weight_decay = value;
                }
            }
            SweepTarget::Momentum => {
                if let OptimizerSpec::Sgd { momentum, .. } = &mut out.optimizer {
                    *momentum = value;
                }
            }
            SweepTarget::Beta1 => match &mut out.optimizer {
                OptimizerSpec::Adam { beta1, .. } | OptimizerSpec::AdamW { beta1, .. } => {
                    *beta1 = value
                }
                _ => {}
            },
            SweepTarget::Beta2 => match &mut out.optimizer {
                OptimizerSpec::Adam { beta2, .. } | OptimizerSpec::AdamW { beta2, .. } => {
                    *beta2 = value
                }
                _ => {}
            },
        }
    }
    out
}

/// What a sweep optimizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The final epoch's validation accuracy, maximized.
    ValAccuracy,
    /// The final epoch's validation loss, minimized.
    ValLoss,
}

impl Objective {
    /// Validation accuracy when the block asks for `metrics = [accuracy]` and its loss has
    /// one, else validation loss.
    pub fn for_config(config: &TrainConfig) -> Objective {
        if config.metrics.contains(&Metric::Accuracy) && has_accuracy(config.loss) {
            Objective::ValAccuracy
        } else {
            Objective::ValLoss
        }
    }

    /// The CSV column and JSON key of the value.
    pub fn column(self) -> &'static str {
        match self {
            Objective::ValAccuracy => "val_accuracy",
            Objective::ValLoss => "val_loss",
        }
    }

    /// In words, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Objective::ValAccuracy => "validation accuracy (maximized)",
            Objective::ValLoss => "validation loss (minimized)",
        }
    }

    pub fn maximize(self) -> bool {
        self == Objective::ValAccuracy
    }

    /// The objective of a finished run: its last epoch's value, when there is one and it is
    /// finite.
    pub fn of(self, history: &[EpochMetrics]) -> Option<f64> {
        let last = history.last()?;
        let value = match self {
            Objective::ValAccuracy => last.val_accuracy,
            Objective::ValLoss => last.val_loss,
        }?;
        value.is_finite().then_some(value)
    }

    /// The value as a quantity to minimize (the accuracy negated).
    pub fn minimized(self, value: f64) -> f64 {
        if self.maximize() {
            -value
        } else {
            value
        }
    }
}

/// A finished trial, as the searcher needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub trial: Trial,
    /// The objective as a value to minimize ([`Objective::minimized`]); `None` when the trial
    /// failed (it counts as the worst).
    pub loss: Option<f64>,
}

/// Proposes a sweep's trials one at a time.
#[derive(Clone, Debug)]
pub struct Searcher {
    axes: Vec<SweepAxis>,
    method: SearchMethod,
    trials: usize,
    proposed: usize,
    rng: ChaCha8Rng,
}

impl Searcher {
    /// A searcher for `spec` with `seed`; `trials` overrides the method's trial count (for a
    /// grid: at most that many of the first combinations). Fails with a message when a grid
    /// axis is not a list, or the sweep has no axis.
    pub fn new(spec: &SweepSpec, seed: u64, trials: Option<usize>) -> Result<Searcher, String> {
        if spec.axes.is_empty() {
            return Err("a sweep needs at least one axis".to_string());
        }
        let planned = match spec.method {
            SearchMethod::Grid => {
                if let Some(axis) = spec
                    .axes
                    .iter()
                    .find(|axis| !matches!(axis.values, SweepValues::List(_)))
                {
                    return Err(format!(
                        "grid search needs a list of values for `{}`",
                        axis.target.name()
                    ));
                }
                let combinations = grid_size(&spec.axes);
                trials.map_or(combinations, |t| t.min(combinations))
            }
            SearchMethod::Random { trials: planned }
            | SearchMethod::Bayesian { trials: planned } => trials.unwrap_or(planned),
        };
        Ok(Searcher {
            axes: spec.axes.clone(),
            method: spec.method,
            trials: planned,
            proposed: 0,
            rng: generator(seed, SWEEP_STREAM),
        })
    }

    /// How many trials the sweep runs.
    pub fn trials(&self) -> usize {
        self.trials
    }

    pub fn axes(&self) -> &[SweepAxis] {
        &self.axes
    }

    /// The next trial, or `None` when all have been proposed. `finished` holds the trials run
    /// so far with their objectives (only Bayesian search reads it).
    pub fn next_trial(&mut self, finished: &[Observation]) -> Option<Trial> {
        if self.proposed >= self.trials {
            return None;
        }
        let index = self.proposed;
        self.proposed += 1;
        let values = match self.method {
            SearchMethod::Grid => grid_point(&self.axes, index),
            SearchMethod::Random { .. } => self.random_point(),
            SearchMethod::Bayesian { .. } => {
                if index < startup_trials(self.trials) || finished.len() < 2 {
                    self.random_point()
                } else {
                    self.tpe_point(finished)
                }
            }
        };
        Some(Trial {
            values: self
                .axes
                .iter()
                .map(|axis| axis.target)
                .zip(values)
                .collect(),
        })
    }

    fn random_point(&mut self) -> Vec<f64> {
        let axes = self.axes.clone();
        axes.iter()
            .map(|axis| sample_prior(&mut self.rng, &axis.values))
            .collect()
    }

    /// One TPE proposal (see the module documentation).
    fn tpe_point(&mut self, finished: &[Observation]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..finished.len()).collect();
        let key = |i: usize| finished[i].loss.unwrap_or(f64::INFINITY);
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        let good_count = ((GAMMA * finished.len() as f64).ceil() as usize).clamp(1, finished.len());
        let (good, bad) = order.split_at(good_count);
        let axes = self.axes.clone();
        let models: Vec<(Density, Density)> = axes
            .iter()
            .enumerate()
            .map(|(axis_index, axis)| {
                let values = |indices: &[usize]| -> Vec<f64> {
                    indices
                        .iter()
                        .filter_map(|&i| {
                            finished[i]
                                .trial
                                .values
                                .get(axis_index)
                                .map(|(_, value)| *value)
                        })
                        .collect()
                };
                (
                    Density::fit(&axis.values, &values(good)),
                    Density::fit(&axis.values, &values(bad)),
                )
            })
            .collect();
        let mut best: Option<(f64, Vec<f64>)> = None;
        for _ in 0..CANDIDATES {
            let candidate: Vec<f64> = models
                .iter()
                .map(|(l, _)| l.sample(&mut self.rng))
                .collect();
            let score: f64 = models
                .iter()
                .zip(&candidate)
                .map(|((l, g), &x)| l.ln_density(x) - g.ln_density(x))
                .sum();
            if best.as_ref().is_none_or(|(top, _)| score > *top) {
                best = Some((score, candidate));
            }
        }
        let (_, transformed) = best.expect("at least one candidate");
        models
            .iter()
            .zip(transformed)
            .map(|((l, _), x)| l.value(x))
            .collect()
    }
}

/// The number of grid combinations (saturating), lists only; a distribution counts as one.
pub fn grid_size(axes: &[SweepAxis]) -> usize {
    axes.iter()
        .map(|axis| match &axis.values {
            SweepValues::List(values) => values.len().max(1),
            _ => 1,
        })
        .fold(1usize, usize::saturating_mul)
}

/// The `index`-th combination of the axes' lists, the last axis varying fastest.
fn grid_point(axes: &[SweepAxis], index: usize) -> Vec<f64> {
    let mut rest = index;
    let mut out = vec![0.0; axes.len()];
    for (slot, axis) in out.iter_mut().zip(axes).rev() {
        if let SweepValues::List(values) = &axis.values {
            let len = values.len().max(1);
            *slot = values.get(rest % len).copied().unwrap_or(0.0);
            rest /= len;
        }
    }
    out
}

/// A uniform draw from [0, 1) with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A draw on [low, high), redrawn in the rare case rounding lands on `high`.
fn uniform_in(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    for _ in 0..64 {
        let x = low + unit(rng) * (high - low);
        if x >= low && x < high {
            return x;
        }
    }
    low
}

/// One value of an axis, drawn from its own distribution.
fn sample_prior(rng: &mut ChaCha8Rng, values: &SweepValues) -> f64 {
    match *values {
        SweepValues::List(ref list) => list
            .get(below(rng, list.len() as u64) as usize)
            .copied()
            .unwrap_or(0.0),
        SweepValues::Uniform { low, high } => uniform_in(rng, low, high),
        SweepValues::LogUniform { low, high } => {
            for _ in 0..64 {
                let x = uniform_in(rng, low.ln(), high.ln()).exp();
                if x >= low && x < high {
                    return x;
                }
            }
            low
        }
        SweepValues::IntUniform { low, high } => {
            let span = (high as i128 - low as i128 + 1).clamp(1, u64::MAX as i128) as u64;
            (low as i128 + below(rng, span) as i128) as f64
        }
    }
}

/// The Parzen density of one axis over some observations, in the axis's transformed space.
#[derive(Clone, Debug)]
enum Density {
    /// A mixture of equal-weight Gaussians truncated to [low, high] (transformed space).
    Continuous {
        kind: Transform,
        low: f64,
        high: f64,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// Each component's mass inside [low, high].
        masses: Vec<f64>,
    },
    /// Probabilities over a list's indices.
    Categorical { values: Vec<f64>, p: Vec<f64> },
}

/// How a continuous axis maps to the space its density lives in.
#[derive(Clone, Copy, Debug)]
enum Transform {
    Linear,
    Log,
    /// A whole number; the space is [a - 0.5, b + 0.5] and values are rounded back.
    Int {
        low: i64,
        high: i64,
    },
}

impl Density {
    /// Fits the density of an axis with `values` to observations in the axis's own units.
    fn fit(values: &SweepValues, observed: &[f64]) -> Density {
        match *values {
            SweepValues::List(ref list) => {
                let k = list.len().max(1);
                let mut counts = vec![1.0 / k as f64; k];
                let mut total = 1.0;
                for &x in observed {
                    if let Some(index) = list.iter().position(|&v| v == x) {
                        counts[index] += 1.0;
                        total += 1.0;
                    }
                }
                Density::Categorical {
                    values: list.clone(),
                    p: counts.into_iter().map(|c| c / total).collect(),
                }
            }
            SweepValues::Uniform { low, high } => {
                Density::continuous(Transform::Linear, low, high, observed.to_vec())
            }
            SweepValues::LogUniform { low, high } => Density::continuous(
                Transform::Log,
                low.ln(),
                high.ln(),
                observed.iter().map(|x| x.ln()).collect(),
            ),
            SweepValues::IntUniform { low, high } => Density::continuous(
                Transform::Int { low, high },
                low as f64 - 0.5,
                high as f64 + 0.5,
                observed.to_vec(),
            ),
        }
    }

    fn continuous(kind: Transform, low: f64, high: f64, points: Vec<f64>) -> Density {
        let range = (high - low).max(f64::MIN_POSITIVE);
        let prior = 0.5 * (low + high);
        let points: Vec<f64> = points.into_iter().filter(|x| x.is_finite()).collect();
        let max_sigma = range;
        let min_sigma = range / (points.len() as f64 + 1.0).min(100.0);
        // Neighbours among the sorted observations and the prior's centre.
        let mut sorted: Vec<f64> = points.clone();
        sorted.push(prior);
        sorted.sort_by(f64::total_cmp);
        let sigma_of = |x: f64| -> f64 {
            let position = sorted.partition_point(|&s| s < x);
            // `sorted[position] == x` (x is among them); look past equal neighbours.
            let left = sorted[..position].last().map(|&s| x - s);
            let mut right_index = position;
            while right_index < sorted.len() && sorted[right_index] <= x {
                right_index += 1;
            }
            let right = sorted.get(right_index).map(|&s| s - x);
            let gap = match (left, right) {
                (Some(a), Some(b)) => a.max(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => max_sigma,
            };
            gap.clamp(min_sigma, max_sigma)
        };
        let mut mus = vec![prior];
        let mut sigmas = vec![max_sigma];
        for &x in &points {
            mus.push(x);
            sigmas.push(sigma_of(x));
        }
        let masses = mus
            .iter()
            .zip(&sigmas)
            .map(|(&mu, &sigma)| {
                (normal_cdf((high - mu) / sigma) - normal_cdf((low - mu) / sigma)).max(1e-12)
            })
            .collect();
        Density::Continuous {
            kind,
            low,
            high,
            mus,
            sigmas,
            masses,
        }
    }

    /// A draw, in the transformed space (an index for a list).
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Density::Categorical { p, .. } => {
                let u = unit(rng);
                let mut acc = 0.0;
                for (index, &probability) in p.iter().enumerate() {
                    acc += probability;
                    if u < acc {
                        return index as f64;
                    }
                }
                (p.len().max(1) - 1) as f64
            }
            Density::Continuous {
                kind,
                low,
                high,
                mus,
                sigmas,
                ..
            } => {
                let component = below(rng, mus.len() as u64) as usize;
                let (mu, sigma) = (mus[component], sigmas[component]);
                let mut x = mu;
                for _ in 0..100 {
                    x = mu + sigma * normal(rng);
                    if x >= *low && x < *high {
                        break;
                    }
                }
                let x = x.clamp(*low, *high);
                match kind {
                    // Snap to the whole number, so the density is scored where the trial runs.
                    Transform::Int { low, high } => x.round().clamp(*low as f64, *high as f64),
                    _ => x,
                }
            }
        }
    }

    /// The log density (log probability for a list) at a transformed point.
    fn ln_density(&self, x: f64) -> f64 {
        match self {
            Density::Categorical { p, .. } => p
                .get(x as usize)
                .copied()
                .unwrap_or(f64::MIN_POSITIVE)
                .max(f64::MIN_POSITIVE)
                .ln(),
            Density::Continuous {
                mus,
                sigmas,
                masses,
                ..
            } => {
                let sum: f64 = mus
                    .iter()
                    .zip(sigmas)
                    .zip(masses)
                    .map(|((&mu, &sigma), &mass)| {
                        let z = (x - mu) / sigma;
                        (-0.5 * z * z).exp() / (sigma * mass)
                    })
                    .sum();
                (sum / mus.len() as f64).max(f64::MIN_POSITIVE).ln()
            }
        }
    }

    /// A transformed point back in the axis's own units, inside its range.
    fn value(&self, x: f64) -> f64 {
        match self {
            Density::Categorical { values, .. } => values
                .get(x as usize)
                .or(values.last())
                .copied()
                .unwrap_or(0.0),
            Density::Continuous {
                kind, low, high, ..
            } => match *kind {
                Transform::Linear => {
                    if x >= *high {
                        *low + (*high - *low) * 0.5
                    } else {
                        x.max(*low)
                    }
                }
                Transform::Log => {
                    let (a, b) = (low.exp(), high.exp());
                    let v = x.exp();
                    if v >= a && v < b {
                        v
                    } else {
                        (0.5 * (low + high)).exp().clamp(a, b)
                    }
                }
                Transform::Int { low, high } => x.round().clamp(low as f64, high as f64),
            },
        }
    }
}

/// The standard normal distribution function, through `erf` (Abramowitz and Stegun 7.1.26,
/// absolute error below 1.5e-7: ample for weighting kernels).
fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelc_compiler::source::Span;

    fn axis(target: SweepTarget, values: SweepValues) -> SweepAxis {
        SweepAxis {
            target,
            values,
            span: Span::DUMMY,
        }
    }

    fn spec(axes: Vec<SweepAxis>, method: SearchMethod) -> SweepSpec {
        SweepSpec {
            axes,
            method,
            span: Span::DUMMY,
        }
    }

    /// Runs a sweep against a synthetic objective (minimized); the best value found.
    fn best_of(spec: &SweepSpec, seed: u64, objective: &dyn Fn(&Trial) -> f64) -> f64 {
        let mut searcher = Searcher::new(spec, seed, None).unwrap();
        let mut finished = Vec::new();
        while let Some(trial) = searcher.next_trial(&finished) {
            let loss = objective(&trial);
            finished.push(Observation {
                trial,
                loss: Some(loss),
            });
        }
        finished
            .iter()
            .filter_map(|o| o.loss)
            .fold(f64::INFINITY, f64::min)
    }

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n % 2 == 1 {
            values[n / 2]
        } else {
            0.5 * (values[n / 2 - 1] + values[n / 2])
        }
    }

    #[test]
    fn grid_enumerates_the_product_in_written_order() {
        let spec = spec(
            vec![
                axis(SweepTarget::Lr, SweepValues::List(vec![1e-3, 3e-3])),
                axis(
                    SweepTarget::Batch,
                    SweepValues::List(vec![32.0, 64.0, 128.0]),
                ),
            ],
            SearchMethod::Grid,
        );
        let mut searcher = Searcher::new(&spec, 0, None).unwrap();
        assert_eq!(searcher.trials(), 6);
        let mut seen = Vec::new();
        while let Some(trial) = searcher.next_trial(&[]) {
            seen.push((
                trial.get(SweepTarget::Lr).unwrap(),
                trial.get(SweepTarget::Batch).unwrap(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                (1e-3, 32.0),
                (1e-3, 64.0),
                (1e-3, 128.0),
                (3e-3, 32.0),
                (3e-3, 64.0),
                (3e-3, 128.0)
            ]
        );
        // `--trials` keeps the first combinations.
        let mut first = Searcher::new(&spec, 0, Some(4)).unwrap();
        assert_eq!(first.trials(), 4);
        let kept: Vec<Trial> = std::iter::from_fn(|| first.next_trial(&[])).collect();
        assert_eq!(kept.len(), 4);
        assert_eq!(kept[3].get(SweepTarget::Lr), Some(3e-3));
    }

    #[test]
    fn grid_refuses_a_distribution() {
        let spec = spec(
            vec![axis(
                SweepTarget::Lr,
                SweepValues::LogUniform {
                    low: 1e-4,
                    high: 1e-2,
                },
            )],
            SearchMethod::Grid,
        );
        let error = Searcher::new(&spec, 0, None).unwrap_err();
        assert!(error.contains("`lr`"), "{error}");
    }

    fn mixed_axes() -> Vec<SweepAxis> {
        vec![
            axis(
                SweepTarget::Lr,
                SweepValues::LogUniform {
                    low: 1e-4,
                    high: 1e-2,
                },
            ),
            axis(
                SweepTarget::Batch,
                SweepValues::List(vec![32.0, 64.0, 128.0]),
            ),
            axis(
                SweepTarget::Epochs,
                SweepValues::IntUniform { low: 2, high: 5 },
            ),
            axis(
                SweepTarget::Momentum,
                SweepValues::Uniform {
                    low: 0.5,
                    high: 0.99,
                },
            ),
        ]
    }

    fn in_bounds(trial: &Trial) {
        let lr = trial.get(SweepTarget::Lr).unwrap();
        assert!((1e-4..1e-2).contains(&lr), "lr {lr}");
        let batch = trial.get(SweepTarget::Batch).unwrap();
        assert!([32.0, 64.0, 128.0].contains(&batch), "batch {batch}");
        let epochs = trial.get(SweepTarget::Epochs).unwrap();
        assert!(
            (2.0..=5.0).contains(&epochs) && epochs.fract() == 0.0,
            "epochs {epochs}"
        );
        let momentum = trial.get(SweepTarget::Momentum).unwrap();
        assert!((0.5..0.99).contains(&momentum), "momentum {momentum}");
    }

    #[test]
    fn random_search_is_reproducible_per_seed_and_in_bounds() {
        let spec = spec(mixed_axes(), SearchMethod::Random { trials: 200 });
        let run = |seed: u64| -> Vec<Trial> {
            let mut searcher = Searcher::new(&spec, seed, None).unwrap();
            std::iter::from_fn(|| searcher.next_trial(&[])).collect()
        };
        let a = run(7);
        assert_eq!(a.len(), 200);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        a.iter().for_each(in_bounds);
        // Every whole number of `int_uniform(2, 5)` and every list entry turns up; the
        // log-uniform draws spread over both decades.
        for epochs in 2..=5 {
            assert!(a
                .iter()
                .any(|t| t.get(SweepTarget::Epochs) == Some(epochs as f64)));
        }
        for batch in [32.0, 64.0, 128.0] {
            assert!(a.iter().any(|t| t.get(SweepTarget::Batch) == Some(batch)));
        }
        let low_decade = a
            .iter()
            .filter(|t| t.get(SweepTarget::Lr).unwrap() < 1e-3)
            .count();
        assert!((60..=140).contains(&low_decade), "{low_decade} of 200");
        // `--trials` overrides the count.
        let searcher = Searcher::new(&spec, 7, Some(3)).unwrap();
        assert_eq!(searcher.trials(), 3);
    }

    #[test]
    fn bayesian_search_is_reproducible_and_in_bounds() {
        let spec = spec(mixed_axes(), SearchMethod::Bayesian { trials: 40 });
        let objective = |t: &Trial| {
            (t.get(SweepTarget::Lr).unwrap().log10() + 3.0).powi(2)
                + (t.get(SweepTarget::Momentum).unwrap() - 0.9).powi(2)
                + if t.get(SweepTarget::Batch) == Some(64.0) {
                    0.0
                } else {
                    0.5
                }
        };
        let run = |seed: u64| -> Vec<Trial> {
            let mut searcher = Searcher::new(&spec, seed, None).unwrap();
            let mut finished: Vec<Observation> = Vec::new();
            while let Some(trial) = searcher.next_trial(&finished) {
                // Every third trial fails: it must count as the worst, not break the search.
                let loss = (finished.len() % 3 != 2).then(|| objective(&trial));
                finished.push(Observation { trial, loss });
            }
            finished.into_iter().map(|o| o.trial).collect()
        };
        let a = run(3);
        assert_eq!(a.len(), 40);
        assert_eq!(a, run(3));
        a.iter().for_each(in_bounds);
    }

    /// TPE against random search with the same budget (20 trials), over 11 seeds: on
    /// `(log10(lr) + 2.5)^2` with lr in log_uniform(1e-6, 1), and on a 2-D version with a
    /// momentum axis, the median best value of TPE is below half that of random search (it is
    /// about a seventh and a sixth of it).
    #[test]
    fn tpe_beats_random_search_on_synthetic_objectives() {
        let one_d = vec![axis(
            SweepTarget::Lr,
            SweepValues::LogUniform {
                low: 1e-6,
                high: 1.0,
            },
        )];
        let two_d = vec![
            one_d[0].clone(),
            axis(
                SweepTarget::Momentum,
                SweepValues::Uniform {
                    low: 0.0,
                    high: 0.99,
                },
            ),
        ];
        let f1 = |t: &Trial| (t.get(SweepTarget::Lr).unwrap().log10() + 2.5).powi(2);
        let f2 = |t: &Trial| {
            (t.get(SweepTarget::Lr).unwrap().log10() + 2.5).powi(2)
                + 10.0 * (t.get(SweepTarget::Momentum).unwrap() - 0.8).powi(2)
        };
        type SyntheticObjective<'a> = &'a dyn Fn(&Trial) -> f64;
        let objectives: [(&[SweepAxis], SyntheticObjective); 2] = [(&one_d, &f1), (&two_d, &f2)];
        for (axes, objective) in objectives {
            let trials = 20;
            let seeds = 0..11u64;
            let random = spec(axes.to_vec(), SearchMethod::Random { trials });
            let tpe = spec(axes.to_vec(), SearchMethod::Bayesian { trials });
            let random_median = median(
                seeds
                    .clone()
                    .map(|s| best_of(&random, s, objective))
                    .collect(),
            );
            let tpe_median = median(seeds.map(|s| best_of(&tpe, s, objective)).collect());
            assert!(
                tpe_median < 0.5 * random_median,
                "{} axes: TPE median best {tpe_median}, random {random_median}",
                axes.len()
            );
        }
    }

    #[test]
    fn startup_is_random_then_tpe() {
        assert_eq!(startup_trials(8), 5);
        assert_eq!(startup_trials(3), 3);
        assert_eq!(startup_trials(40), 10);
    }

    #[test]
    fn apply_writes_settings_and_optimizer_arguments() {
        let mut config = TrainConfig::defaults("M");
        config.optimizer = OptimizerSpec::AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let trial = Trial {
            values: vec![
                (SweepTarget::Lr, 3e-3),
                (SweepTarget::Batch, 64.0),
                (SweepTarget::Epochs, 3.0),
                (SweepTarget::WeightDecay, 1e-4),
                (SweepTarget::Beta1, 0.8),
                (SweepTarget::Beta2, 0.99),
                (SweepTarget::L1, 1e-5),
                (SweepTarget::L2, 2e-5),
                (SweepTarget::Split, 0.7),
            ],
        };
        let out = apply(&config, &trial);
        assert_eq!(
            out.optimizer,
            OptimizerSpec::AdamW {
                lr: 3e-3,
                beta1: 0.8,
                beta2: 0.99,
                eps: 1e-8,
                weight_decay: 1e-4,
            }
        );
        assert_eq!((out.batch, out.epochs), (64, 3));
        assert_eq!((out.l1, out.l2, out.split), (1e-5, 2e-5, 0.7));
        assert!(out.sweep.is_none());
        config.optimizer = OptimizerSpec::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
        };
        let sgd = apply(
            &config,
            &Trial {
                values: vec![(SweepTarget::Momentum, 0.9), (SweepTarget::Lr, 0.05)],
            },
        );
        assert_eq!(
            sgd.optimizer,
            OptimizerSpec::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: false,
            }
        );
    }

    #[test]
    fn normal_cdf_is_accurate_enough() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-6);
        assert!((normal_cdf(-2.0) - 0.022_750_132).abs() < 1e-6);
    }
}
