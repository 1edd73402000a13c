//! Elements and stamps validation accepts: numbers in their one canonical
//! form, elements and sets within their limits, no timestamp 0.

use edge_crdt::codec::{self, DecodeError};
use edge_crdt::crdt::{Bias, Crdt, Element, LwwSet, MAX_ELEMENT, MAX_ELEMENTS};
use proptest::prelude::*;

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn prop_numbers_from_json_are_canonical(f in any::<f64>(), i in any::<i64>(), u in any::<u64>()) {
        // Every number an API can hand in becomes an element that validates,
        // and its JSON form reads back as the same element and value.
        let mut values = vec![serde_json::json!(i), serde_json::json!(u), serde_json::json!(i as f64)];
        if f.is_finite() {
            values.push(serde_json::json!(f));
        }
        for v in values {
            let e = Element::from_json(&v).expect("a finite number is an element");
            let set = LwwSet::default().insert([e.clone()], 1);
            set.validate().map_err(|err| TestCaseError::fail(format!("{v} -> {e:?}: {err}")))?;
            let back = e.to_json();
            prop_assert_eq!(back.as_f64(), v.as_f64(), "{} -> {:?} -> {}", v, e, back);
            prop_assert_eq!(Element::from_json(&back), Some(e.clone()), "{} -> {:?} -> {}", v, e, back);
        }
    }

    #[test]
    fn prop_non_canonical_numbers_are_rejected(i in any::<i64>(), u in 1..u64::MAX, f in any::<f64>()) {
        let mut texts = vec![
            format!("{i}.0"),
            format!("{i}e0"),
            format!("{i}.00"),
            format!("0{u}"),
            format!("+{u}"),
            format!(" {u}"),
            format!("{u} "),
        ];
        let shortest = format!("{f:?}");
        if f.is_finite() && f.fract() != 0.0 && !shortest.contains('e') {
            // The shortest form plus a needless trailing zero.
            texts.push(format!("{shortest}0"));
        }
        for text in texts {
            let set = LwwSet::default().insert([Element::Num(text.clone())], 3);
            prop_assert!(set.validate().is_err(), "`{}` accepted", text);
            let remove = LwwSet::default().remove([Element::Num(text.clone())], 3);
            prop_assert!(remove.validate().is_err(), "`{}` accepted in removes", text);
        }
    }
}

#[test]
fn a_whole_float_past_2_pow_53_is_its_integer() {
    for (float, int) in [
        (9_298_636_376_005_328.0_f64, "9298636376005328"),
        (-4.611_686_018_427_388e18, "-4611686018427387904"),
        (1.152_921_504_606_847e19, "11529215046068469760"),
    ] {
        let e = Element::from_json(&serde_json::json!(float)).unwrap();
        assert_eq!(e, Element::Num(int.into()));
        let spelled = LwwSet::default().insert([Element::Num(format!("{int}.0"))], 1);
        assert!(spelled.validate().is_err(), "{int}.0 is not canonical");
    }
}

#[test]
fn validate_rejects_bad_elements_and_stamps() {
    let ok = |e: Element| LwwSet::default().insert([e], 1).validate();
    for text in [
        "1.0", "-0", "1e2", "1E2", "0.50", "01", "NaN", "Infinity", "", "1_000", "0x10", "[1]",
        "1e21", "true",
    ] {
        assert!(
            ok(Element::Num(text.into())).is_err(),
            "`{text}` is not canonical"
        );
    }
    for text in [
        "0",
        "-1",
        "1.5",
        "1e+21",
        "1.5e-7",
        "-2.5",
        "18446744073709551615",
        // serde_json's default float parser reads this one ULP off.
        "-2.0273274075509093e-308",
    ] {
        assert_eq!(ok(Element::Num(text.into())), Ok(()), "`{text}`");
    }
    // Oversized elements, counted in bytes.
    assert_eq!(ok(Element::Str("a".repeat(MAX_ELEMENT))), Ok(()));
    assert!(ok(Element::Str("a".repeat(MAX_ELEMENT + 1))).is_err());
    assert!(ok(Element::Str("é".repeat(MAX_ELEMENT / 2 + 1))).is_err());
    let big = Element::Str("b".repeat(MAX_ELEMENT + 1));
    assert!(LwwSet::default().remove([big], 1).validate().is_err());
    // Timestamp 0, on either side and on the creation.
    let e = Element::Bool(true);
    for zero in [
        LwwSet::default().insert([e.clone()], 0),
        LwwSet::default().remove([e.clone()], 0),
        LwwSet::new(Bias::AddWins, 0),
        LwwSet::new(Bias::RemoveWins, 0),
    ] {
        assert!(zero.validate().is_err(), "{zero:?}");
        assert!(matches!(
            codec::decode_state::<LwwSet>(&codec::encode(&zero)),
            Err(DecodeError::Invalid(_))
        ));
    }
    // Too many entries.
    let many = (0..=MAX_ELEMENTS).map(|i| Element::Num(i.to_string()));
    assert!(LwwSet::default().insert(many, 1).validate().is_err());
    let enough = (0..MAX_ELEMENTS).map(|i| Element::Num(i.to_string()));
    assert_eq!(LwwSet::default().insert(enough, 1).validate(), Ok(()));
}
