//! Shape rules shared by the checker's ops: broadcasting, matmul, axes, convolution windows.

use crate::ir::dim::format_shape;
use crate::ir::{Dim, DimError};

/// NumPy broadcasting of two shapes. `Err` carries the first pair of dims (aligned from the
/// right) that neither match nor are 1.
pub fn broadcast(left: &[Dim], right: &[Dim]) -> Result<Vec<Dim>, (Dim, Dim)> {
    let rank = left.len().max(right.len());
    let one = Dim::constant(1);
    let mut out = Vec::with_capacity(rank);
    for index in 0..rank {
        let left_dim = (index + left.len())
            .checked_sub(rank)
            .map(|i| &left[i])
            .unwrap_or(&one);
        let right_dim = (index + right.len())
            .checked_sub(rank)
            .map(|i| &right[i])
            .unwrap_or(&one);
        if left_dim == right_dim || *right_dim == one {
            out.push(left_dim.clone());
        } else if *left_dim == one {
            out.push(right_dim.clone());
        } else {
            return Err((left_dim.clone(), right_dim.clone()));
        }
    }
    Ok(out)
}

/// Normalizes a possibly negative axis against a rank.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let rank = rank as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&axis).then_some(axis as usize)
}

/// The product of dims, for element counts.
pub fn product(dims: &[Dim]) -> Result<Dim, DimError> {
    dims.iter().try_fold(Dim::constant(1), |acc, d| acc.mul(d))
}

/// Output size of a convolution or pooling window along one axis:
/// `(size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`, floored.
pub fn window_output(
    size: &Dim,
    kernel: i64,
    stride: i64,
    padding: i64,
    dilation: i64,
) -> Result<Dim, DimError> {
    let span = dilation
        .checked_mul(kernel - 1)
        .ok_or(DimError::Overflow)?
        .checked_add(1)
        .ok_or(DimError::Overflow)?;
    let padded = size.add(&Dim::constant(
        padding.checked_mul(2).ok_or(DimError::Overflow)?,
    ))?;
    padded
        .sub(&Dim::constant(span))?
        .floor_div(stride)?
        .add(&Dim::constant(1))
}

pub fn shape_text(shape: &[Dim]) -> String {
    format_shape(shape)
}
