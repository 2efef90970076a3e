//! Slugs, unicode names, bad input (4xx problem+json, nothing stored), the OpenAPI paths.

use axum::http::StatusCode;
use serde_json::json;

use super::{ORGS, user};
use crate::{PROBLEM, apps};

#[tokio::test]
async fn organizations_get_slugs_and_reject_bad_input() {
    for app in apps().await {
        let owner = user(&app, "owner").await;
        let (status, org) = app
            .post_as(&owner.token, ORGS, json!({"name": "  ACME, Inc. "}))
            .await;
        assert_eq!(
            (status, org["slug"].as_str()),
            (StatusCode::CREATED, Some("acme-inc")),
            "{org}"
        );
        let (_, again) = app
            .post_as(&owner.token, ORGS, json!({"name": "Acme Inc"}))
            .await;
        assert!(
            again["slug"].as_str().unwrap().starts_with("acme-inc-"),
            "{again}"
        );
        let (_, unicode) = app
            .post_as(&owner.token, ORGS, json!({"name": "株式会社 🚀"}))
            .await;
        assert_eq!(unicode["name"], "株式会社 🚀");
        let (status, _) = app
            .post_as(
                &owner.token,
                ORGS,
                json!({"name": "Other", "slug": "acme-inc"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let orgs_before = app.count("organizations").await;
        let cases = [
            json!({}),
            json!({"name": 42}),
            json!({"name": ""}),
            json!({"name": "   "}),
            json!({"name": "x".repeat(101)}),
            json!({"name": "bidi\u{202E}evil"}),
            json!({"name": "nul\u{0}byte"}),
            json!({"name": "Ok", "slug": "Not A Slug"}),
            json!({"name": "Ok", "slug": "é"}),
            json!({"name": "Ok", "extra": true}),
            json!(["name"]),
        ];
        for body in cases {
            let reply = app
                .request("POST", ORGS, Some(&owner.token), Some(body.to_string()))
                .await;
            assert!(
                reply.status.is_client_error(),
                "{}: {body}: {}",
                app.label,
                reply.status
            );
            assert_eq!(reply.content_type, PROBLEM, "{body}");
        }
        let (status, _) = app.post_raw(ORGS, r#"{"name": "No token"}"#).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let org_id = org["id"].as_str().unwrap();
        let bad_invites = [
            json!({"email": "not-an-email"}),
            json!({"email": "a@b.c", "role": "king"}),
            json!({"role": "member"}),
        ];
        for body in bad_invites {
            let (status, _) = app
                .post_as(
                    &owner.token,
                    &format!("{ORGS}/{org_id}/invitations"),
                    body.clone(),
                )
                .await;
            assert!(status.is_client_error(), "{body}");
        }
        assert_eq!(app.count("organizations").await, orgs_before);
        assert_eq!(app.count("organization_invitations").await, 0);
        assert_eq!(app.count("teams").await, 0);
        let (_, list) = app.get_as(&owner.token, &format!("{ORGS}?limit=2")).await;
        assert_eq!(
            (
                list["data"].as_array().unwrap().len(),
                list["has_more"].as_bool()
            ),
            (2, Some(true))
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_organization_and_key_routes() {
    let app = apps().await.remove(0);
    let reply = app.request("GET", "/openapi.json", None, None).await;
    let paths = &reply.body["paths"];
    for path in [
        "/api/v1/organizations",
        "/api/v1/organizations/{org_id}/teams/{team_id}/members/{user_id}",
        "/api/v1/organizations/invitations/accept",
        "/api/v1/organizations/{org_id}/transfer-ownership",
        "/api/v1/api-keys/introspect",
    ] {
        assert!(paths.get(path).is_some(), "{path} missing");
    }
}
