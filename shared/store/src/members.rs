//! `workspace_members`: who may administer a workspace.

use crate::error::StoreResult;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The role of `user_id` in `ws_id`, if a member.
pub async fn member_role(pool: &PgPool, ws_id: Uuid, user_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("select role from workspace_members where ws_id = $1 and user_id = $2")
            .bind(ws_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Makes `user_id` an admin of `ws_id`: adds the member, or promotes a `member`; an owner stays owner.
pub async fn grant_admin(pool: &PgPool, ws_id: Uuid, user_id: &str) -> StoreResult<()> {
    sqlx::query(
        "insert into workspace_members (ws_id, user_id, role) values ($1, $2, 'admin')
         on conflict (ws_id, user_id) do update set role = 'admin' where workspace_members.role = 'member'",
    )
    .bind(ws_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A new workspace `name` with `user_id` its admin, in place of those of that name `user_id`
/// administered before (deleted with everything in them): the demo's, rerun without piling up.
pub async fn replace_workspace(pool: &PgPool, user_id: &str, name: &str) -> StoreResult<Uuid> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "delete from workspaces w using workspace_members m
          where m.ws_id = w.id and m.user_id = $1 and m.role in ('owner', 'admin') and w.name = $2",
    )
    .bind(user_id)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    let (ws_id,): (Uuid,) = sqlx::query_as("insert into workspaces (name) values ($1) returning id")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("insert into workspace_members (ws_id, user_id, role) values ($1, $2, 'admin')")
        .bind(ws_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ws_id)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AdminWorkspace {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

/// Workspaces where `user_id` is an owner or admin, oldest first.
pub async fn admin_workspaces(pool: &PgPool, user_id: &str) -> StoreResult<Vec<AdminWorkspace>> {
    Ok(sqlx::query_as(
        "select w.id, w.name, m.role from workspace_members m join workspaces w on w.id = m.ws_id
          where m.user_id = $1 and m.role in ('owner', 'admin') order by w.created_at, w.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}
