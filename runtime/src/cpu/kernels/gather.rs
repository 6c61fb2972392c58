//! `numpy.take(table, indices, axis)` for any element type: whole inner rows are copied. An
//! index outside `0..table.shape[axis]` is an error, as in the interpreter (no wrapping).
//! Its adjoint, [`scatter_add`], adds f32 rows back at their indices.

/// # Safety
/// `table` holds `outer * axis_length * inner` elements of `element_size` bytes, `indices`
/// holds `count` values and `out` has room for `outer * count * inner` elements. `axis` is
/// only for the message.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gather(
    table: *const u8,
    (outer, axis_length, inner): (usize, usize, usize),
    indices: *const i64,
    count: usize,
    out: *mut u8,
    element_size: usize,
    axis: usize,
) -> Result<(), String> {
    let indices = std::slice::from_raw_parts(indices, count);
    if let Some(&bad) = indices
        .iter()
        .find(|&&index| index < 0 || index as u64 >= axis_length as u64)
    {
        return Err(format!(
            "gather failed: index {bad} is out of range 0..{axis_length} for axis {axis} of the table"
        ));
    }
    let row_bytes = inner * element_size;
    let mut destination = out;
    for o in 0..outer {
        for &index in indices {
            let source = table.add((o * axis_length + index as usize) * row_bytes);
            std::ptr::copy_nonoverlapping(source, destination, row_bytes);
            destination = destination.add(row_bytes);
        }
    }
    Ok(())
}

/// The adjoint of [`gather`] for f32: `out` (`[outer, axis_length, inner]`) is zero except for
/// each update row (`updates` is `[outer, count, inner]`) added at its index; repeated indices
/// accumulate, in f64 as in the interpreter. An index out of range is an error.
///
/// # Safety
/// `updates` holds `outer * count * inner` values, `indices` holds `count` and `out` has room
/// for `outer * axis_length * inner`.
pub unsafe fn scatter_add(
    updates: *const f32,
    indices: *const i64,
    count: usize,
    out: *mut f32,
    (outer, axis_length, inner): (usize, usize, usize),
    axis: usize,
) -> Result<(), String> {
    let indices = std::slice::from_raw_parts(indices, count);
    if let Some(&bad) = indices
        .iter()
        .find(|&&index| index < 0 || index as u64 >= axis_length as u64)
    {
        return Err(format!(
            "scatter_add failed: index {bad} is out of range 0..{axis_length} for axis {axis} of the result"
        ));
    }
    let updates = std::slice::from_raw_parts(updates, outer * count * inner);
    let out = std::slice::from_raw_parts_mut(out, outer * axis_length * inner);
    let mut sums = vec![0.0f64; out.len()];
    let mut rows = updates.chunks_exact(inner.max(1));
    for o in 0..outer {
        for &index in indices {
            let start = (o * axis_length + index as usize) * inner;
            let Some(row) = rows.next() else { break };
            for (sum, &value) in sums[start..start + inner].iter_mut().zip(row) {
                *sum += f64::from(value);
            }
        }
    }
    for (o, s) in out.iter_mut().zip(&sums) {
        *o = *s as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repeated indices accumulate, untouched rows are zero, and a bad index is an error.
    #[test]
    fn scatter_add_accumulates_repeated_indices_and_refuses_bad_ones() {
        // updates [outer 2, count 3, inner 2] into [2, 4, 2] at indices [1, 3, 1].
        let updates: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let mut out = vec![f32::NAN; 16];
        unsafe {
            scatter_add(
                updates.as_ptr(),
                [1i64, 3, 1].as_ptr(),
                3,
                out.as_mut_ptr(),
                (2, 4, 2),
                1,
            )
        }
        .unwrap();
        let expected = [
            0.0, 0.0, 6.0, 8.0, 0.0, 0.0, 3.0, 4.0, //
            0.0, 0.0, 18.0, 20.0, 0.0, 0.0, 9.0, 10.0,
        ];
        assert_eq!(out, expected);
        let error = unsafe {
            scatter_add(
                updates.as_ptr(),
                [1i64, 4, 1].as_ptr(),
                3,
                out.as_mut_ptr(),
                (2, 4, 2),
                1,
            )
        }
        .unwrap_err();
        assert!(error.contains("index 4 is out of range 0..4"), "{error}");
    }
}
