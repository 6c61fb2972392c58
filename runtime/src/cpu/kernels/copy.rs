//! Strided copies: the one kernel behind permute, expand (stride 0), slice (offset and step) and
//! concat (a destination offset). Source and destination are described by an element offset
//! and per-axis strides in elements over the copied shape; rows whose innermost strides are
//! both 1 are copied with `memcpy`.

use super::{SendPtr, PARALLEL_WORK};
use rayon::prelude::*;

/// One side of a copy: element offset and strides over the copied shape.
#[derive(Clone, Debug)]
pub struct View {
    pub offset: isize,
    pub strides: Vec<isize>,
}

/// Copies `shape` elements of `element_size` bytes from `source` to `destination`.
///
/// # Safety
/// Every element the views address must lie inside its buffer, and the two buffers must not
/// overlap.
pub unsafe fn copy_strided(
    source: *const u8,
    source_view: &View,
    destination: *mut u8,
    destination_view: &View,
    shape: &[usize],
    element_size: usize,
) {
    let count: usize = shape.iter().product();
    if count == 0 {
        return;
    }
    if shape.is_empty() {
        std::ptr::copy_nonoverlapping(
            source.offset(source_view.offset * element_size as isize),
            destination.offset(destination_view.offset * element_size as isize),
            element_size,
        );
        return;
    }
    let rank = shape.len();
    let inner = shape[rank - 1];
    let rows = count / inner;
    let contiguous = source_view.strides[rank - 1] == 1 && destination_view.strides[rank - 1] == 1;
    let source = SendPtr(source as *mut u8);
    let destination = SendPtr(destination);
    let copy_rows = |first: usize, last: usize| {
        let mut index = vec![0usize; rank - 1];
        // Position of row `first` in the outer axes.
        let mut remainder = first;
        for axis in (0..rank - 1).rev() {
            index[axis] = remainder % shape[axis];
            remainder /= shape[axis];
        }
        for _ in first..last {
            let mut from = source_view.offset;
            let mut to = destination_view.offset;
            for (axis, &position) in index.iter().enumerate() {
                from += position as isize * source_view.strides[axis];
                to += position as isize * destination_view.strides[axis];
            }
            // SAFETY: the caller guarantees the views stay inside the buffers.
            unsafe {
                if contiguous {
                    std::ptr::copy_nonoverlapping(
                        source.get().offset(from * element_size as isize),
                        destination.get().offset(to * element_size as isize),
                        inner * element_size,
                    );
                } else {
                    let step_from = source_view.strides[rank - 1];
                    let step_to = destination_view.strides[rank - 1];
                    copy_row(
                        source.get().offset(from * element_size as isize),
                        step_from,
                        destination.get().offset(to * element_size as isize),
                        step_to,
                        inner,
                        element_size,
                    );
                }
            }
            for axis in (0..rank - 1).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
    };
    let tasks = super::threads().min(rows);
    if count * element_size < PARALLEL_WORK * 4 || tasks < 2 {
        copy_rows(0, rows);
    } else {
        let chunk = rows.div_ceil(tasks);
        (0..tasks)
            .into_par_iter()
            .for_each(|task| copy_rows(task * chunk, ((task + 1) * chunk).min(rows)));
    }
}

/// One row with arbitrary strides (in elements).
unsafe fn copy_row(
    source: *const u8,
    source_step: isize,
    destination: *mut u8,
    destination_step: isize,
    count: usize,
    element_size: usize,
) {
    match element_size {
        4 => {
            let (s, d) = (source as *const f32, destination as *mut f32);
            for i in 0..count as isize {
                *d.offset(i * destination_step) = *s.offset(i * source_step);
            }
        }
        8 => {
            let (s, d) = (source as *const u64, destination as *mut u64);
            for i in 0..count as isize {
                *d.offset(i * destination_step) = *s.offset(i * source_step);
            }
        }
        _ => {
            for i in 0..count as isize {
                std::ptr::copy_nonoverlapping(
                    source.offset(i * source_step * element_size as isize),
                    destination.offset(i * destination_step * element_size as isize),
                    element_size,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_a_matrix() {
        let source: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [2, 3]
        let mut out = vec![0f32; 6]; // [3, 2]
        unsafe {
            copy_strided(
                source.as_ptr() as *const u8,
                &View {
                    offset: 0,
                    strides: vec![1, 3],
                },
                out.as_mut_ptr() as *mut u8,
                &View {
                    offset: 0,
                    strides: vec![2, 1],
                },
                &[3, 2],
                4,
            )
        };
        assert_eq!(out, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn reverses_with_a_negative_step() {
        let source: Vec<i64> = (0..5).collect();
        let mut out = vec![0i64; 5];
        unsafe {
            copy_strided(
                source.as_ptr() as *const u8,
                &View {
                    offset: 4,
                    strides: vec![-1],
                },
                out.as_mut_ptr() as *mut u8,
                &View {
                    offset: 0,
                    strides: vec![1],
                },
                &[5],
                8,
            )
        };
        assert_eq!(out, vec![4, 3, 2, 1, 0]);
    }
}
