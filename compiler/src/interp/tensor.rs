//! A dense, row-major host tensor: the value type of the reference interpreter and of the
//! runtime's tensor I/O.

use crate::ir::{DType, Literal};
use std::fmt;

#[derive(Clone, PartialEq, Debug)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

#[derive(Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor; `None` when the data length is not the product of the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Option<Tensor> {
        let count = element_count(&shape)?;
        let len = match &data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        };
        (count == len).then_some(Tensor { shape, data })
    }

    pub fn from_f32(shape: Vec<usize>, values: Vec<f32>) -> Option<Tensor> {
        Tensor::new(shape, TensorData::F32(values))
    }

    pub fn from_i64(shape: Vec<usize>, values: Vec<i64>) -> Option<Tensor> {
        Tensor::new(shape, TensorData::I64(values))
    }

    pub fn from_bool(shape: Vec<usize>, values: Vec<bool>) -> Option<Tensor> {
        Tensor::new(shape, TensorData::Bool(values))
    }

    /// A tensor of `shape` filled with one value. The caller has checked the size.
    pub fn full(shape: Vec<usize>, value: Literal) -> Tensor {
        let count = element_count(&shape).unwrap_or(0);
        let data = match value {
            Literal::F32(v) => TensorData::F32(vec![v; count]),
            Literal::I64(v) => TensorData::I64(vec![v; count]),
            Literal::Bool(v) => TensorData::Bool(vec![v; count]),
        };
        Tensor { shape, data }
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<&[bool]> {
        match &self.data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The largest absolute difference to another f32 tensor of the same shape. A NaN on one
    /// side only counts as an infinite difference (NaN on both sides as none), so a comparison
    /// can never pass because of a NaN.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f32> {
        if self.shape != other.shape {
            return None;
        }
        let (a, b) = (self.as_f32()?, other.as_f32()?);
        let difference = |(x, y): (&f32, &f32)| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (true, false) | (false, true) => f32::INFINITY,
            (false, false) if x == y => 0.0,
            (false, false) => (x - y).abs(),
        };
        Some(a.iter().zip(b).map(difference).fold(0.0, f32::max))
    }
}

/// The product of a shape's dims, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}{:?}, ", self.dtype(), self.shape)?;
        match &self.data {
            TensorData::F32(v) => write!(f, "{:?}", &v[..v.len().min(8)])?,
            TensorData::I64(v) => write!(f, "{:?}", &v[..v.len().min(8)])?,
            TensorData::Bool(v) => write!(f, "{:?}", &v[..v.len().min(8)])?,
        }
        if self.len() > 8 {
            write!(f, " ...")?;
        }
        write!(f, ")")
    }
}
