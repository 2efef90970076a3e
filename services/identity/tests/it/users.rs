//! `/api/v1/users`: own account, password change, admin management, bootstrap admin.

use axum::http::StatusCode;
use mercato_kernel::Config;
use serde_json::json;

use crate::{PASSWORD, apps, apps_with, email, tokens_of};

#[tokio::test]
async fn users_read_and_rename_themselves() {
    for app in apps().await {
        let (user, token, _) = app.register(&email("me"), PASSWORD).await;
        let (status, me) = app.get_as(&token, "/api/v1/users/me").await;
        assert_eq!(
            (status, &me["email"]),
            (StatusCode::OK, &user["email"]),
            "{}",
            app.label
        );
        let (status, renamed) = app
            .patch_as(
                &token,
                "/api/v1/users/me",
                json!({"name": " Zo\u{eb} \u{1F600} "}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{renamed}");
        assert_eq!(renamed["name"], "Zo\u{eb} \u{1F600}");
        for bad in [
            json!({"name": ""}),
            json!({"name": "a\u{0}"}),
            json!({"name": "x\u{202E}y"}),
            json!({"name": "x\u{FEFF}"}),
            json!({"name": "n".repeat(201)}),
            json!({"name": 3}),
            json!({"email": "new@example.com"}),
            json!({}),
        ] {
            let (status, problem) = app.patch_as(&token, "/api/v1/users/me", bad.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{bad} -> {problem}"
            );
        }
        let (_, me) = app.get_as(&token, "/api/v1/users/me").await;
        assert_eq!(
            me["name"], "Zo\u{eb} \u{1F600}",
            "nothing stored by bad input"
        );
    }
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    for app in apps().await {
        let address = email("chpw");
        let (_, token, other_refresh) = app.register(&address, PASSWORD).await;
        let path = "/api/v1/users/me/password";
        let (status, problem) = app
            .post_as(
                &token,
                path,
                json!({"current_password": "nope-nope-nope", "new_password": "brand-new-secret"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", app.label);
        assert_eq!(problem["errors"][0]["code"], "incorrect_password");
        let (status, _) = app
            .post_as(
                &token,
                path,
                json!({"current_password": PASSWORD, "new_password": "password1"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "common passwords are refused"
        );
        let (status, session) = app
            .post_as(
                &token,
                path,
                json!({"current_password": PASSWORD, "new_password": "brand-new-secret"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        let (_, _, new_refresh) = tokens_of(session);
        let refresh = |t: String| {
            app.request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": t}).to_string()),
            )
        };
        assert_eq!(
            refresh(other_refresh).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(refresh(new_refresh).await.status, StatusCode::OK);
        assert_eq!(
            app.login(&address, PASSWORD).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.login(&address, "brand-new-secret").await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn admin_routes_need_an_admin() {
    for app in apps().await {
        let (user, customer, _) = app.register(&email("cust"), PASSWORD).await;
        let (_, staff, _) = app.user_with_roles(&email("staff"), &["staff"]).await;
        let id = user["id"].as_str().unwrap();
        let routes = [
            ("GET", "/api/v1/users".to_owned(), None),
            (
                "POST",
                "/api/v1/users".to_owned(),
                Some(json!({"email": "x@example.com", "password": PASSWORD, "name": "X"})),
            ),
            ("GET", format!("/api/v1/users/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/users/{id}"),
                Some(json!({"roles": ["admin"]})),
            ),
            ("POST", "/api/v1/auth/keys/rotate".to_owned(), None),
        ];
        for (method, path, body) in routes {
            // Raw JSON text, as `request` sends it.
            let body = body.map(|b| b.to_string());
            let anonymous = app.request(method, &path, None, body.clone()).await;
            assert_eq!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{}: {method} {path}",
                app.label
            );
            for token in [&customer, &staff] {
                let reply = app.request(method, &path, Some(token), body.clone()).await;
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
                assert_eq!(reply.body["code"], "forbidden");
            }
        }
        assert_eq!(app.count("users").await, 2, "nothing created");
    }
}

#[tokio::test]
async fn admins_create_list_read_and_update_users() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let body = json!({"email": "Staff@Example.com", "password": PASSWORD, "name": "Sam", "roles": ["staff"]});
        let (status, created) = app.post_as(&admin, "/api/v1/users", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {created}", app.label);
        assert_eq!(created["roles"], json!(["customer", "staff"]));
        assert_eq!(created["email"], "staff@example.com");
        let (status, dup) = app.post_as(&admin, "/api/v1/users", body).await;
        assert_eq!(
            (status, dup["code"].as_str()),
            (StatusCode::CONFLICT, Some("email_taken"))
        );
        let bad = json!({"email": "r@example.com", "password": PASSWORD, "name": "R", "roles": ["owner"]});
        assert_eq!(
            app.post_as(&admin, "/api/v1/users", bad).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        for i in 0..3 {
            app.register(&email(&format!("list{i}")), PASSWORD).await;
        }

        let mut seen = Vec::new();
        let mut path = "/api/v1/users?limit=2".to_owned();
        loop {
            let (status, page) = app.get_as(&admin, &path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["id"].clone()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/users?limit=2&starting_after={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "admin + staff + 3 customers");
        assert_eq!(
            app.get_as(&admin, "/api/v1/users?limit=0").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        let id = created["id"].as_str().unwrap();
        let (status, one) = app.get_as(&admin, &format!("/api/v1/users/{id}")).await;
        assert_eq!((status, &one["id"]), (StatusCode::OK, &created["id"]));
        let missing = mercato_kernel::id::new_id("usr");
        assert_eq!(
            app.get_as(&admin, &format!("/api/v1/users/{missing}"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_as(&admin, "/api/v1/users/ord_1").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        let (status, promoted) = app
            .patch_as(
                &admin,
                &format!("/api/v1/users/{id}"),
                json!({"roles": ["admin"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{promoted}");
        assert_eq!(promoted["roles"], json!(["customer", "admin"]));
        let login = app.login("staff@example.com", PASSWORD).await;
        assert_eq!(login.body["user"]["roles"], json!(["customer", "admin"]));
        let (status, _) = app
            .patch_as(
                &admin,
                &format!("/api/v1/users/{missing}"),
                json!({"disabled": true}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app
            .patch_as(
                &admin,
                &format!("/api/v1/users/{id}"),
                json!({"roles": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn disabled_users_cannot_log_in_refresh_or_act() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let address = email("disabled");
        let (user, access, refresh) = app.register(&address, PASSWORD).await;
        let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
        let (status, updated) = app.patch_as(&admin, &path, json!({"disabled": true})).await;
        assert_eq!(
            (status, &updated["disabled"]),
            (StatusCode::OK, &json!(true)),
            "{}",
            app.label
        );

        let login = app.login(&address, PASSWORD).await;
        assert_eq!(login.status, StatusCode::FORBIDDEN, "{}", login.body);
        let refreshed = app
            .request(
                "POST",
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh}).to_string()),
            )
            .await;
        assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.get_as(&access, "/api/v1/users/me").await.0,
            StatusCode::UNAUTHORIZED
        );

        let (status, _) = app
            .patch_as(&admin, &path, json!({"disabled": false}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.login(&address, PASSWORD).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn admins_cannot_disable_or_demote_themselves() {
    for app in apps().await {
        let admin = app.admin_token().await;
        let (_, me) = app.get_as(&admin, "/api/v1/users/me").await;
        let path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());
        for body in [json!({"disabled": true}), json!({"roles": ["staff"]})] {
            let (status, problem) = app.patch_as(&admin, &path, body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{}: {problem}", app.label);
        }
    }
}

fn bootstrap_config(password: &str) -> Config {
    let mut config = Config::default();
    config.mercato_bootstrap_admin_email = Some("Root@Example.com".into());
    config.mercato_bootstrap_admin_password = Some(password.into());
    config
}

#[tokio::test]
async fn the_bootstrap_admin_is_created_once() {
    for app in apps_with(bootstrap_config("bootstrap-secret-1")).await {
        let login = app.login("root@example.com", "bootstrap-secret-1").await;
        assert_eq!(
            login.status,
            StatusCode::OK,
            "{}: {}",
            app.label,
            login.body
        );
        assert_eq!(login.body["user"]["roles"], json!(["customer", "admin"]));
        app.restart().await;
        app.restart().await;
        assert_eq!(app.count("users").await, 1, "not duplicated on restart");
    }
}

#[tokio::test]
async fn no_admin_without_configuration() {
    for app in apps().await {
        assert_eq!(app.count("users").await, 0, "{}", app.label);
        assert_eq!(
            app.login("admin@example.com", "admin").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let mut config = bootstrap_config("x");
    config.mercato_bootstrap_admin_password = None;
    for app in apps_with(config).await {
        assert_eq!(
            app.count("users").await,
            0,
            "an email alone creates nothing"
        );
    }
}
