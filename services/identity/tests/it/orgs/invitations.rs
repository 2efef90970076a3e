//! Invitations: accepted once, by the invited email only; expired and revoked ones refused.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ORGS, create_org, role_of, user};
use crate::apps;

#[tokio::test]
async fn invitations_are_accepted_once_by_the_invited_email() {
    for app in apps().await {
        let owner = user(&app, "owner").await;
        let invitee = user(&app, "invitee").await;
        let stranger = user(&app, "stranger").await;
        let org = create_org(&app, &owner, "Epsilon").await;
        let invitations = format!("{ORGS}/{org}/invitations");
        let accept = format!("{ORGS}/invitations/accept");
        // Case and spaces do not matter: emails are normalized.
        let shouted = format!("  {}  ", invitee.email.to_uppercase());
        let (status, inv) = app
            .post_as(
                &owner.token,
                &invitations,
                json!({"email": shouted, "role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        assert_eq!(inv["status"], "pending");
        assert!(inv.get("token").is_none());
        let token = app
            .emailed_token(&invitee.email, "organization_invitation")
            .await;
        let stored: Vec<String> =
            mercato_store::sqlx::query_scalar("SELECT token_hash FROM organization_invitations")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        assert!(stored.iter().all(|h| h != &token && !h.contains(&token)));

        let (status, body) = app
            .post_as(&stranger.token, &accept, json!({"token": token}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("invitation_email_mismatch"))
        );
        let (status, _) = app
            .post_as(&invitee.token, &accept, json!({"token": "inv_wrong"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, joined) = app
            .post_as(&invitee.token, &accept, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::OK, "{joined}");
        assert_eq!(
            (joined["id"].as_str(), joined["role"].as_str()),
            (Some(org.as_str()), Some("admin"))
        );
        let (status, _) = app
            .post_as(&invitee.token, &accept, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "a token is single use");
        let added = app.outbox("organization.member.added").await;
        assert_eq!(added.len(), 1);
        assert_eq!(added[0]["data"]["user_id"], invitee.id.as_str());
        assert_eq!(app.outbox("organization.created").await.len(), 1);

        // Expired and revoked invitations cannot be accepted.
        let (_, inv) = app
            .post_as(&owner.token, &invitations, json!({"email": stranger.email}))
            .await;
        let token = app
            .emailed_token(&stranger.email, "organization_invitation")
            .await;
        mercato_store::sqlx::query(
            "UPDATE organization_invitations SET expires_at = 1 WHERE id = $1",
        )
        .bind(inv["id"].as_str().unwrap())
        .execute(app.db.pool())
        .await
        .unwrap();
        let (status, _) = app
            .post_as(&stranger.token, &accept, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::GONE);
        let (_, inv) = app
            .post_as(&owner.token, &invitations, json!({"email": stranger.email}))
            .await;
        let token = app
            .emailed_token(&stranger.email, "organization_invitation")
            .await;
        let revoke = format!("{invitations}/{}", inv["id"].as_str().unwrap());
        assert_eq!(
            app.delete_as(&owner.token, &revoke).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.delete_as(&owner.token, &revoke).await.0,
            StatusCode::CONFLICT
        );
        let (status, _) = app
            .post_as(&stranger.token, &accept, json!({"token": token}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(role_of(&app, &org, &owner, &stranger.id).await, Value::Null);
        // Inviting a member again is a conflict.
        let (status, _) = app
            .post_as(&owner.token, &invitations, json!({"email": invitee.email}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, list) = app.get_as(&owner.token, &invitations).await;
        let states: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["status"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["accepted", "expired", "revoked"]);
    }
}
