use super::*;

fn input(json: serde_json::Value) -> PromotionInput {
    serde_json::from_value(json).unwrap()
}

fn fields(err: Vec<FieldError>) -> Vec<String> {
    err.into_iter().map(|f| f.field).collect()
}

#[test]
fn parses_a_percentage_coupon_on_categories() {
    let spec = PromotionSpec::parse(input(serde_json::json!({
        "name": " Spring ", "kind": "percentage", "basis_points": 1500,
        "target": "categories", "target_ids": ["cat_b", "cat_a", "cat_b"],
        "coupon_code": "spring-10", "starts_at": "2026-03-01T00:00:00Z"
    })))
    .unwrap();
    assert_eq!(spec.name, "Spring");
    assert_eq!(spec.discount, Discount::Percentage(1500));
    assert_eq!(
        spec.target,
        Target::Categories(vec!["cat_a".into(), "cat_b".into()])
    );
    assert_eq!(spec.coupon_code.as_deref(), Some("SPRING-10"));
    assert!(spec.active && !spec.stackable);
}

#[test]
fn reports_every_invalid_field() {
    let err = PromotionSpec::parse(input(serde_json::json!({
        "name": "", "kind": "fixed_amount", "amounts": [{"amount": 0, "currency": "eur"}],
        "target": "all", "target_ids": ["x"], "coupon_code": "a b",
        "starts_at": "2026-03-02T00:00:00Z", "ends_at": "2026-03-01T00:00:00Z",
        "usage_limit": 0
    })))
    .unwrap_err();
    assert_eq!(
        fields(err),
        [
            "name",
            "amounts[0].currency",
            "target_ids",
            "coupon_code",
            "ends_at",
            "usage_limit"
        ]
    );
}

#[test]
fn rejects_out_of_range_basis_points_and_duplicate_currencies() {
    let err = PromotionSpec::parse(input(serde_json::json!({
        "name": "x", "kind": "percentage", "basis_points": 10001, "target": "all"
    })))
    .unwrap_err();
    assert_eq!(fields(err), ["basis_points"]);
    let err = PromotionSpec::parse(input(serde_json::json!({
        "name": "x", "kind": "fixed_amount", "target": "all",
        "amounts": [{"amount": 5, "currency": "EUR"}, {"amount": 6, "currency": "EUR"}]
    })))
    .unwrap_err();
    assert_eq!(fields(err), ["amounts[1]"]);
}

#[test]
fn a_patch_overlays_and_null_clears() {
    let spec = PromotionSpec::parse(input(serde_json::json!({
        "name": "x", "kind": "percentage", "basis_points": 100, "target": "all",
        "coupon_code": "ABC", "usage_limit": 3
    })))
    .unwrap();
    let patch = input(serde_json::json!({"coupon_code": null, "name": "y"}));
    let merged = PromotionSpec::parse(PromotionInput::from(&spec).overlay(patch)).unwrap();
    assert_eq!(merged.coupon_code, None);
    assert_eq!(merged.name, "y");
    assert_eq!(merged.usage_limit, Some(3));
}
