//! Teams: created by managers, unique names, members from the organization only.

use axum::http::StatusCode;
use serde_json::json;

use super::{ORGS, create_org, join, user};
use crate::apps;

#[tokio::test]
async fn teams_hold_members_of_their_organization() {
    for app in apps().await {
        let owner = user(&app, "owner").await;
        let member = user(&app, "member").await;
        let outsider = user(&app, "outsider").await;
        let org = create_org(&app, &owner, "Zeta").await;
        join(&app, &org, &owner, &member, "member").await;
        let teams = format!("{ORGS}/{org}/teams");
        let (status, team) = app
            .post_as(
                &owner.token,
                &teams,
                json!({"name": "Søk 検索", "description": "search"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
        let path = format!("{teams}/{}", team["id"].as_str().unwrap());
        assert_eq!(
            app.post_as(&owner.token, &teams, json!({"name": "Søk 検索"}))
                .await
                .0,
            StatusCode::CONFLICT
        );
        let add = format!("{path}/members");
        assert_eq!(
            app.post_as(&owner.token, &add, json!({"user_id": member.id}))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.post_as(&owner.token, &add, json!({"user_id": outsider.id}))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (_, got) = app.get_as(&member.token, &path).await;
        assert_eq!(got["members"][0]["user_id"], member.id.as_str(), "{got}");
        let (status, renamed) = app
            .patch_as(
                &owner.token,
                &path,
                json!({"description": "finding things"}),
            )
            .await;
        assert_eq!(
            (status, renamed["name"].as_str()),
            (StatusCode::OK, Some("Søk 検索"))
        );
        let remove = format!("{add}/{}", member.id);
        assert_eq!(
            app.delete_as(&owner.token, &remove).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.delete_as(&owner.token, &remove).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete_as(&owner.token, &path).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.get_as(&owner.token, &path).await.0,
            StatusCode::NOT_FOUND
        );
    }
}
