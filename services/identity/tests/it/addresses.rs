//! The address book: saved, listed newest first, deleted; checked like checkout's addresses;
//! private to its owner; capped.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{PASSWORD, apps, email};

const BOOK: &str = "/api/v1/users/me/addresses";

fn home() -> Value {
    json!({
        "name": "Ada Lovelace", "line1": "Hauptstraße 1", "city": "Berlin",
        "postal_code": "10115", "country": "de"
    })
}

#[tokio::test]
async fn addresses_are_saved_listed_and_deleted_by_their_owner_only() {
    for app in apps().await {
        let (_, ada, _) = app.register(&email("ada"), PASSWORD).await;
        let (_, eve, _) = app.register(&email("eve"), PASSWORD).await;

        let (status, first) = app
            .post_as(&ada, BOOK, json!({ "label": " Home ", "address": home() }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {first}", app.label);
        assert_eq!(first["label"], "Home");
        assert_eq!(
            first["address"]["country"], "DE",
            "the country is upper-cased"
        );
        assert!(first["id"].as_str().unwrap().starts_with("adr_"));
        let mut office = home();
        office["line1"] = json!("Friedrichstraße 100");
        let (status, second) = app.post_as(&ada, BOOK, json!({ "address": office })).await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        assert_eq!(second["label"], Value::Null);

        let (status, list) = app.get_as(&ada, BOOK).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|a| &a["id"]).collect();
        assert_eq!(ids, [&second["id"], &first["id"]], "newest first");
        let (_, theirs) = app.get_as(&eve, BOOK).await;
        assert_eq!(theirs, json!([]), "another user sees none of them");

        let path = format!("{BOOK}/{}", first["id"].as_str().unwrap());
        let (status, _) = app.delete_as(&eve, &path).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "another user cannot delete it"
        );
        let (status, _) = app.delete_as(&ada, &path).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.delete_as(&ada, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = app.get_as(&ada, BOOK).await;
        assert_eq!(list.as_array().unwrap().len(), 1);

        let (status, _) = app.get_as("not-a-token", BOOK).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn bad_addresses_are_refused_field_by_field_and_the_book_is_capped() {
    for app in apps().await {
        let (_, token, _) = app.register(&email("cap"), PASSWORD).await;
        let mut bad = home();
        bad["country"] = json!("Germany");
        bad["postal_code"] = json!("<script>");
        let (status, problem) = app
            .post_as(
                &token,
                BOOK,
                json!({ "label": "x".repeat(51), "address": bad }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields, ["address.postal_code", "address.country", "label"]);
        let (status, _) = app
            .post_as(&token, BOOK, json!({ "address": home(), "extra": 1 }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, list) = app.get_as(&token, BOOK).await;
        assert_eq!(list, json!([]), "nothing refused was stored");

        for _ in 0..20 {
            let (status, body) = app
                .post_as(&token, BOOK, json!({ "address": home() }))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (status, problem) = app
            .post_as(&token, BOOK, json!({ "address": home() }))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["code"], "address_book_full");
        let (_, list) = app.get_as(&token, BOOK).await;
        assert_eq!(list.as_array().unwrap().len(), 20);
    }
}
