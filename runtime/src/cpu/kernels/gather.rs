//! `numpy.take(table, indices, axis)` for any element type: whole inner rows are copied. An
//! index outside `0..table.shape[axis]` is an error, as in the interpreter (no wrapping).

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
