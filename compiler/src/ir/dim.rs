//! Symbolic dimensions: a small exact algebra over named sizes.
//!
//! A [`Dim`] is a polynomial with integer coefficients over atoms. An atom is a named symbol
//! (`B`, `T`) or the floor division of a polynomial by a positive constant (what a strided
//! convolution over a symbolic size produces). Polynomials are kept in a normal form (sorted
//! monomials, no zero coefficients, exact divisions folded), so two dims are equal exactly when
//! their normal forms are equal. All arithmetic is checked: an overflow is an error, never a wrap.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Atom {
    Sym(String),
    FloorDiv(Box<Dim>, i64),
}

/// A product of atoms, sorted; the empty product is the constant monomial.
type Monomial = Vec<Atom>;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dim {
    terms: BTreeMap<Monomial, i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimError {
    Overflow,
    DivisionByZero,
    /// The division is not exact: `numerator / divisor` leaves a remainder.
    NotDivisible,
}

impl Dim {
    pub fn constant(value: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Vec::new(), value);
        }
        Dim { terms }
    }

    pub fn symbol(name: impl Into<String>) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![Atom::Sym(name.into())], 1);
        Dim { terms }
    }

    /// The value when the dim does not depend on any symbol.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    /// The symbols this dim mentions, in order.
    pub fn symbols(&self) -> Vec<String> {
        let mut out = Vec::new();
        for monomial in self.terms.keys() {
            for atom in monomial {
                collect_symbols(atom, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn add(&self, other: &Dim) -> Result<Dim, DimError> {
        let mut terms = self.terms.clone();
        for (monomial, coefficient) in &other.terms {
            let entry = terms.entry(monomial.clone()).or_insert(0);
            *entry = entry.checked_add(*coefficient).ok_or(DimError::Overflow)?;
        }
        terms.retain(|_, c| *c != 0);
        Ok(Dim { terms })
    }

    pub fn neg(&self) -> Result<Dim, DimError> {
        let mut terms = BTreeMap::new();
        for (monomial, coefficient) in &self.terms {
            terms.insert(
                monomial.clone(),
                coefficient.checked_neg().ok_or(DimError::Overflow)?,
            );
        }
        Ok(Dim { terms })
    }

    pub fn sub(&self, other: &Dim) -> Result<Dim, DimError> {
        self.add(&other.neg()?)
    }

    pub fn mul(&self, other: &Dim) -> Result<Dim, DimError> {
        let mut terms: BTreeMap<Monomial, i64> = BTreeMap::new();
        for (left_monomial, left_coefficient) in &self.terms {
            for (right_monomial, right_coefficient) in &other.terms {
                let mut monomial = left_monomial.clone();
                monomial.extend(right_monomial.iter().cloned());
                monomial.sort();
                let product = left_coefficient
                    .checked_mul(*right_coefficient)
                    .ok_or(DimError::Overflow)?;
                let entry = terms.entry(monomial).or_insert(0);
                *entry = entry.checked_add(product).ok_or(DimError::Overflow)?;
            }
        }
        terms.retain(|_, c| *c != 0);
        Ok(Dim { terms })
    }

    /// Exact division by a constant: every coefficient must be divisible.
    pub fn div_exact(&self, divisor: i64) -> Result<Dim, DimError> {
        if divisor == 0 {
            return Err(DimError::DivisionByZero);
        }
        let mut terms = BTreeMap::new();
        for (monomial, coefficient) in &self.terms {
            if coefficient % divisor != 0 {
                return Err(DimError::NotDivisible);
            }
            terms.insert(monomial.clone(), coefficient / divisor);
        }
        Ok(Dim { terms })
    }

    /// Exact division by another dim: by a constant, by a dim equal to this one, or by a single
    /// monomial that divides every term (`B*T / T = B`).
    pub fn div_dim(&self, divisor: &Dim) -> Result<Dim, DimError> {
        if let Some(constant) = divisor.as_const() {
            return self.div_exact(constant);
        }
        if self == divisor {
            return Ok(Dim::constant(1));
        }
        if divisor.terms.len() == 1 {
            let (divisor_monomial, divisor_coefficient) =
                divisor.terms.iter().next().expect("one term");
            let mut terms = BTreeMap::new();
            for (monomial, coefficient) in &self.terms {
                let mut rest = monomial.clone();
                for atom in divisor_monomial {
                    match rest.iter().position(|a| a == atom) {
                        Some(position) => {
                            rest.remove(position);
                        }
                        None => return Err(DimError::NotDivisible),
                    }
                }
                if coefficient % divisor_coefficient != 0 {
                    return Err(DimError::NotDivisible);
                }
                terms.insert(rest, coefficient / divisor_coefficient);
            }
            return Ok(Dim { terms });
        }
        Err(DimError::NotDivisible)
    }

    /// Floor division by a positive constant. Exact divisions fold; otherwise the result is a
    /// `FloorDiv` atom that evaluates at run time.
    pub fn floor_div(&self, divisor: i64) -> Result<Dim, DimError> {
        if divisor <= 0 {
            return Err(DimError::DivisionByZero);
        }
        if let Some(value) = self.as_const() {
            return Ok(Dim::constant(value.div_euclid(divisor)));
        }
        if let Ok(exact) = self.div_exact(divisor) {
            return Ok(exact);
        }
        let mut terms = BTreeMap::new();
        terms.insert(vec![Atom::FloorDiv(Box::new(self.clone()), divisor)], 1);
        Ok(Dim { terms })
    }

    /// Evaluates under a binding of symbols. `None` when a symbol is unbound; overflow is an error.
    pub fn eval(&self, bindings: &HashMap<String, i64>) -> Result<Option<i64>, DimError> {
        let mut total: i64 = 0;
        for (monomial, coefficient) in &self.terms {
            let mut product = *coefficient;
            for atom in monomial {
                let value = match atom {
                    Atom::Sym(name) => match bindings.get(name) {
                        Some(value) => *value,
                        None => return Ok(None),
                    },
                    Atom::FloorDiv(inner, divisor) => match inner.eval(bindings)? {
                        Some(value) => value.div_euclid(*divisor),
                        None => return Ok(None),
                    },
                };
                product = product.checked_mul(value).ok_or(DimError::Overflow)?;
            }
            total = total.checked_add(product).ok_or(DimError::Overflow)?;
        }
        Ok(Some(total))
    }

    /// Replaces symbols by dims (used when a callee's symbolic signature is instantiated).
    pub fn substitute(&self, bindings: &HashMap<String, Dim>) -> Result<Dim, DimError> {
        let mut total = Dim::constant(0);
        for (monomial, coefficient) in &self.terms {
            let mut product = Dim::constant(*coefficient);
            for atom in monomial {
                let value = match atom {
                    Atom::Sym(name) => match bindings.get(name) {
                        Some(value) => value.clone(),
                        None => Dim::symbol(name.clone()),
                    },
                    Atom::FloorDiv(inner, divisor) => {
                        inner.substitute(bindings)?.floor_div(*divisor)?
                    }
                };
                product = product.mul(&value)?;
            }
            total = total.add(&product)?;
        }
        Ok(total)
    }
}

fn collect_symbols(atom: &Atom, out: &mut Vec<String>) {
    match atom {
        Atom::Sym(name) => out.push(name.clone()),
        Atom::FloorDiv(inner, _) => out.extend(inner.symbols()),
    }
}

impl From<i64> for Dim {
    fn from(value: i64) -> Dim {
        Dim::constant(value)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(name) => write!(f, "{name}"),
            Atom::FloorDiv(inner, divisor) => write!(f, "({inner}) / {divisor}"),
        }
    }
}

impl fmt::Display for Dim {
    /// Highest-degree terms first, then the constant: `B*T + 1`, `4*hidden`, `-B + 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return write!(f, "0");
        }
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then(a.cmp(b)));
        for (index, (monomial, coefficient)) in terms.into_iter().enumerate() {
            let coefficient = *coefficient;
            let magnitude = coefficient.unsigned_abs();
            if index == 0 {
                if coefficient < 0 {
                    write!(f, "-")?;
                }
            } else if coefficient < 0 {
                write!(f, " - ")?;
            } else {
                write!(f, " + ")?;
            }
            if monomial.is_empty() {
                write!(f, "{magnitude}")?;
                continue;
            }
            if magnitude != 1 {
                write!(f, "{magnitude}*")?;
            }
            for (atom_index, atom) in monomial.iter().enumerate() {
                if atom_index > 0 {
                    write!(f, "*")?;
                }
                write!(f, "{atom}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Formats a shape as `[B, 784]`.
pub fn format_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_makes_equal_dims_equal() {
        let b = Dim::symbol("B");
        let t = Dim::symbol("T");
        let left = b.mul(&t).unwrap().add(&Dim::constant(2)).unwrap();
        let right = Dim::constant(2).add(&t.mul(&b).unwrap()).unwrap();
        assert_eq!(left, right);
        assert_eq!(left.to_string(), "B*T + 2");
    }

    #[test]
    fn exact_and_floor_division() {
        let b = Dim::symbol("B");
        let four_b = b.mul(&Dim::constant(4)).unwrap();
        assert_eq!(four_b.div_exact(2).unwrap().to_string(), "2*B");
        assert_eq!(four_b.div_exact(3), Err(DimError::NotDivisible));
        let odd = b.add(&Dim::constant(1)).unwrap().floor_div(2).unwrap();
        let bindings = HashMap::from([("B".to_string(), 7)]);
        assert_eq!(odd.eval(&bindings).unwrap(), Some(4));
        let bt = b.mul(&Dim::symbol("T")).unwrap();
        assert_eq!(bt.div_dim(&Dim::symbol("T")).unwrap(), b);
    }

    #[test]
    fn overflow_is_an_error() {
        let big = Dim::constant(i64::MAX);
        assert_eq!(big.add(&Dim::constant(1)), Err(DimError::Overflow));
        assert_eq!(big.mul(&Dim::constant(2)), Err(DimError::Overflow));
    }
}
