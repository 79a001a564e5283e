//! Resource quantities in their canonical form, as kube-apiserver stores them (`cpu: 1000m`
//! reads back as `1`, `memory: 1024Mi` as `1Gi`): the value is kept exactly and re-written
//! with the largest suffix of its format that leaves an integer.

/// Decimal SI suffixes and their powers of ten.
const DECIMAL: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
/// Binary SI suffixes and their powers of 1024.
const BINARY: &[(&str, u32)] = &[
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];

/// The canonical text of a quantity, or None if `s` is not one (left as written) or uses the
/// exponent form (`1e3`, kept as is).
pub fn canonical(s: &str) -> Option<String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." {
        return None;
    }
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = mantissa * 10^exp10 * 1024^exp2
    let mantissa: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let mut exp10 = -(frac_part.len() as i32);
    let sign = if negative && mantissa != 0 { "-" } else { "" };
    if let Some((_, p)) = BINARY.iter().find(|(b, _)| *b == suffix) {
        // Binary stays binary when the value is a whole number of bytes, else decimal.
        let mut value = mantissa.checked_mul(1024i128.checked_pow(*p)?)?;
        while exp10 < 0 && value % 10 == 0 {
            value /= 10;
            exp10 += 1;
        }
        if exp10 == 0 {
            return Some(format!("{sign}{}", binary(value)));
        }
        return Some(format!("{sign}{}", decimal(value, exp10)));
    }
    let (_, e) = DECIMAL.iter().find(|(d, _)| *d == suffix)?;
    exp10 += e;
    Some(format!("{sign}{}", decimal(mantissa, exp10)))
}

fn binary(value: i128) -> String {
    if value == 0 {
        return "0".into();
    }
    let mut v = value;
    let mut k = 0;
    while k < BINARY.len() && v % 1024 == 0 {
        v /= 1024;
        k += 1;
    }
    if k == 0 {
        // Below 1Ki (or not a multiple): written as a plain decimal number.
        return decimal(value, 0);
    }
    format!("{v}{}", BINARY[k - 1].0)
}

/// `mantissa * 10^exp10` with the largest decimal suffix that keeps an integer; values finer
/// than nano round up, as kube-apiserver does.
fn decimal(mut mantissa: i128, mut exp10: i32) -> String {
    if mantissa == 0 {
        return "0".into();
    }
    while exp10 < -9 {
        // Round up to the next nano.
        let rem = mantissa % 10;
        mantissa = mantissa / 10 + i128::from(rem != 0);
        exp10 += 1;
    }
    // Normalize to an exponent that is a multiple of 3.
    while exp10.rem_euclid(3) != 0 {
        mantissa *= 10;
        exp10 -= 1;
    }
    while mantissa % 1000 == 0 && exp10 < 18 {
        mantissa /= 1000;
        exp10 += 3;
    }
    let suffix = DECIMAL
        .iter()
        .find(|(_, e)| *e == exp10)
        .map_or("", |(s, _)| s);
    format!("{mantissa}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_back_as_the_api_server_writes_them() {
        for (written, stored) in [
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("2", "2"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1024Mi", "1Gi"),
            ("1000Mi", "1000Mi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("0", "0"),
            ("1G", "1G"),
            ("1000M", "1G"),
            ("0.1m", "100u"),
            ("-1", "-1"),
        ] {
            assert_eq!(canonical(written).as_deref(), Some(stored), "{written}");
        }
        assert_eq!(canonical("1e3"), None);
        assert_eq!(canonical("lots"), None);
    }
}
