//! Organizations, teams, members, invitations: tenancy (404 across organizations), roles,
//! last-owner protection, ownership transfer, invitation acceptance, bad input.

use axum::http::StatusCode;
use serde_json::{Value, json};

mod input;
mod invitations;
mod teams;

use crate::{PASSWORD, PROBLEM, TestApp, apps, email};

pub(super) const ORGS: &str = "/api/v1/organizations";

/// A signed-in user: id, email, access token.
pub(super) struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub(super) async fn user(app: &TestApp, name: &str) -> User {
    let address = email(name);
    let (json, token, _) = app.register(&address, PASSWORD).await;
    User {
        id: json["id"].as_str().unwrap().to_owned(),
        email: address,
        token,
    }
}

pub(super) async fn create_org(app: &TestApp, owner: &User, name: &str) -> String {
    let (status, org) = app.post_as(&owner.token, ORGS, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{}: {org}", app.label);
    assert_eq!(org["role"], "owner");
    org["id"].as_str().unwrap().to_owned()
}

/// Invites `who` as `role` and accepts as them; returns the invitation id.
pub(super) async fn join(
    app: &TestApp,
    org: &str,
    inviter: &User,
    who: &User,
    role: &str,
) -> String {
    let path = format!("{ORGS}/{org}/invitations");
    let (status, inv) = app
        .post_as(
            &inviter.token,
            &path,
            json!({"email": who.email, "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}: {inv}", app.label);
    let token = app
        .emailed_token(&who.email, "organization_invitation")
        .await;
    let accept = format!("{ORGS}/invitations/accept");
    let (status, body) = app
        .post_as(&who.token, &accept, json!({"token": token}))
        .await;
    assert_eq!(status, StatusCode::OK, "{}: {body}", app.label);
    inv["id"].as_str().unwrap().to_owned()
}

pub(super) async fn role_of(app: &TestApp, org: &str, viewer: &User, member: &str) -> Value {
    let (status, members) = app
        .get_as(&viewer.token, &format!("{ORGS}/{org}/members"))
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let found = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == member);
    found.map(|m| m["role"].clone()).unwrap_or(Value::Null)
}

/// Everything B's owner can read about B, for before/after comparisons.
async fn snapshot(app: &TestApp, owner: &User, org: &str, team: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        format!("{ORGS}/{org}"),
        format!("{ORGS}/{org}/members"),
        format!("{ORGS}/{org}/teams"),
        format!("{ORGS}/{org}/teams/{team}"),
        format!("{ORGS}/{org}/invitations"),
    ] {
        let (status, body) = app.get_as(&owner.token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        all.push(body);
    }
    all
}

#[tokio::test]
async fn every_route_of_another_organization_answers_404() {
    for app in apps().await {
        let alice = user(&app, "alice").await;
        let bob = user(&app, "bob").await;
        let carol = user(&app, "carol").await;
        let org_a = create_org(&app, &alice, "Alpha").await;
        let org_b = create_org(&app, &bob, "Beta").await;
        join(&app, &org_b, &bob, &carol, "member").await;
        let (_, team) = app
            .post_as(
                &bob.token,
                &format!("{ORGS}/{org_b}/teams"),
                json!({"name": "Ops"}),
            )
            .await;
        let team_b = team["id"].as_str().unwrap().to_owned();
        app.post_as(
            &bob.token,
            &format!("{ORGS}/{org_b}/teams/{team_b}/members"),
            json!({"user_id": carol.id}),
        )
        .await;
        let (_, inv) = app
            .post_as(
                &bob.token,
                &format!("{ORGS}/{org_b}/invitations"),
                json!({"email": alice.email}),
            )
            .await;
        let inv_b = inv["id"].as_str().unwrap().to_owned();
        let (_, team) = app
            .post_as(
                &alice.token,
                &format!("{ORGS}/{org_a}/teams"),
                json!({"name": "Dev"}),
            )
            .await;
        let team_a = team["id"].as_str().unwrap().to_owned();
        let before = snapshot(&app, &bob, &org_b, &team_b).await;

        let b = format!("{ORGS}/{org_b}");
        let (carol_id, bob_id) = (carol.id.as_str(), bob.id.as_str());
        let routes: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", b.clone(), None),
            ("PATCH", b.clone(), Some(json!({"name": "Hijacked"}))),
            ("GET", format!("{b}/members"), None),
            (
                "PATCH",
                format!("{b}/members/{carol_id}"),
                Some(json!({"role": "admin"})),
            ),
            ("DELETE", format!("{b}/members/{carol_id}"), None),
            ("DELETE", format!("{b}/members/{bob_id}"), None),
            (
                "POST",
                format!("{b}/transfer-ownership"),
                Some(json!({"user_id": carol_id})),
            ),
            (
                "POST",
                format!("{b}/teams"),
                Some(json!({"name": "Intruders"})),
            ),
            ("GET", format!("{b}/teams"), None),
            ("GET", format!("{b}/teams/{team_b}"), None),
            (
                "PATCH",
                format!("{b}/teams/{team_b}"),
                Some(json!({"name": "Renamed"})),
            ),
            ("DELETE", format!("{b}/teams/{team_b}"), None),
            (
                "POST",
                format!("{b}/teams/{team_b}/members"),
                Some(json!({"user_id": carol_id})),
            ),
            (
                "DELETE",
                format!("{b}/teams/{team_b}/members/{carol_id}"),
                None,
            ),
            (
                "POST",
                format!("{b}/invitations"),
                Some(json!({"email": "x@example.com"})),
            ),
            ("GET", format!("{b}/invitations"), None),
            ("DELETE", format!("{b}/invitations/{inv_b}"), None),
            // B's ids under A's organization: still not found.
            ("GET", format!("{ORGS}/{org_a}/teams/{team_b}"), None),
            (
                "PATCH",
                format!("{ORGS}/{org_a}/teams/{team_b}"),
                Some(json!({"name": "X"})),
            ),
            ("DELETE", format!("{ORGS}/{org_a}/teams/{team_b}"), None),
            (
                "POST",
                format!("{ORGS}/{org_a}/teams/{team_b}/members"),
                Some(json!({"user_id": carol_id})),
            ),
            (
                "POST",
                format!("{ORGS}/{org_a}/teams/{team_a}/members"),
                Some(json!({"user_id": carol_id})),
            ),
            (
                "DELETE",
                format!("{ORGS}/{org_a}/teams/{team_b}/members/{carol_id}"),
                None,
            ),
            (
                "PATCH",
                format!("{ORGS}/{org_a}/members/{carol_id}"),
                Some(json!({"role": "admin"})),
            ),
            ("DELETE", format!("{ORGS}/{org_a}/members/{carol_id}"), None),
            (
                "POST",
                format!("{ORGS}/{org_a}/transfer-ownership"),
                Some(json!({"user_id": carol_id})),
            ),
            (
                "DELETE",
                format!("{ORGS}/{org_a}/invitations/{inv_b}"),
                None,
            ),
            ("GET", format!("{ORGS}/org_not-an-id"), None),
        ];
        for (method, path, body) in routes {
            // Raw JSON text, as `request` sends it.
            let body = body.map(|b| b.to_string());
            let reply = app.request(method, &path, Some(&alice.token), body).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{}: {method} {path}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM, "{method} {path}");
        }
        assert_eq!(
            snapshot(&app, &bob, &org_b, &team_b).await,
            before,
            "{}",
            app.label
        );
        let (_, mine) = app.get_as(&alice.token, ORGS).await;
        assert_eq!(mine["data"].as_array().unwrap().len(), 1, "{mine}");
    }
}

#[tokio::test]
async fn members_are_forbidden_admin_actions() {
    for app in apps().await {
        let owner = user(&app, "owner").await;
        let member = user(&app, "member").await;
        let org = create_org(&app, &owner, "Gamma").await;
        join(&app, &org, &owner, &member, "member").await;
        let (_, team) = app
            .post_as(
                &owner.token,
                &format!("{ORGS}/{org}/teams"),
                json!({"name": "T"}),
            )
            .await;
        let team = team["id"].as_str().unwrap();
        let o = format!("{ORGS}/{org}");
        let forbidden: Vec<(&str, String, Option<Value>)> = vec![
            ("PATCH", o.clone(), Some(json!({"name": "Mine"}))),
            ("POST", format!("{o}/teams"), Some(json!({"name": "New"}))),
            (
                "PATCH",
                format!("{o}/teams/{team}"),
                Some(json!({"name": "New"})),
            ),
            ("DELETE", format!("{o}/teams/{team}"), None),
            (
                "POST",
                format!("{o}/teams/{team}/members"),
                Some(json!({"user_id": member.id})),
            ),
            (
                "PATCH",
                format!("{o}/members/{}", owner.id),
                Some(json!({"role": "member"})),
            ),
            ("DELETE", format!("{o}/members/{}", owner.id), None),
            (
                "POST",
                format!("{o}/invitations"),
                Some(json!({"email": "y@example.com"})),
            ),
            ("GET", format!("{o}/invitations"), None),
            (
                "POST",
                format!("{o}/transfer-ownership"),
                Some(json!({"user_id": member.id})),
            ),
        ];
        for (method, path, body) in forbidden {
            // Raw JSON text, as `request` sends it.
            let body = body.map(|b| b.to_string());
            let reply = app.request(method, &path, Some(&member.token), body).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{}: {method} {path}: {}",
                app.label,
                reply.body
            );
            assert_eq!(reply.content_type, PROBLEM);
        }
        for path in [
            o.clone(),
            format!("{o}/members"),
            format!("{o}/teams"),
            format!("{o}/teams/{team}"),
        ] {
            assert_eq!(
                app.get_as(&member.token, &path).await.0,
                StatusCode::OK,
                "{path}"
            );
        }
        // An admin manages members but cannot touch the owner.
        let (status, _) = app
            .patch_as(
                &owner.token,
                &format!("{o}/members/{}", member.id),
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .patch_as(
                &member.token,
                &format!("{o}/members/{}", owner.id),
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .post_as(
                &member.token,
                &format!("{o}/teams"),
                json!({"name": "Admins"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

#[tokio::test]
async fn the_last_owner_stays_and_ownership_transfers() {
    for app in apps().await {
        let owner = user(&app, "owner").await;
        let other = user(&app, "other").await;
        let org = create_org(&app, &owner, "Delta").await;
        let o = format!("{ORGS}/{org}");
        let (status, body) = app
            .patch_as(
                &owner.token,
                &format!("{o}/members/{}", owner.id),
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("last_owner"))
        );
        let (status, _) = app
            .delete_as(&owner.token, &format!("{o}/members/{}", owner.id))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        join(&app, &org, &owner, &other, "member").await;
        let (status, _) = app
            .post_as(
                &owner.token,
                &format!("{o}/transfer-ownership"),
                json!({"user_id": "usr_nobody"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, moved) = app
            .post_as(
                &owner.token,
                &format!("{o}/transfer-ownership"),
                json!({"user_id": other.id}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert_eq!(role_of(&app, &org, &other, &other.id).await, "owner");
        assert_eq!(role_of(&app, &org, &other, &owner.id).await, "admin");
        // The former owner, now admin, may leave; the new sole owner may not.
        let (status, _) = app
            .delete_as(&other.token, &format!("{o}/members/{}", other.id))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = app
            .delete_as(&owner.token, &format!("{o}/members/{}", owner.id))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.get_as(&owner.token, &o).await.0, StatusCode::NOT_FOUND);
    }
}
