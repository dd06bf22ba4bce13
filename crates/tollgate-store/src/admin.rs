//! `AdminStore` on SQL: the single admin credential row and the readiness ping.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;
use tollgate_core::ports::{AdminCredential, AdminStore, StoreError};

use crate::{SqlStore, map_err, ts};

#[async_trait]
impl AdminStore for SqlStore {
    async fn admin_credential(&self) -> Result<Option<AdminCredential>, StoreError> {
        let row = sqlx::query("SELECT username, password_hash FROM admin_credentials WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|row| {
            Ok(AdminCredential {
                username: row.try_get("username").map_err(map_err)?,
                password_hash: row.try_get("password_hash").map_err(map_err)?,
            })
        })
        .transpose()
    }

    async fn set_admin_credential(&self, credential: &AdminCredential) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_credentials (id, username, password_hash, updated_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, password_hash = excluded.password_hash, \
             updated_at = excluded.updated_at",
        )
        .bind(credential.username.as_str())
        .bind(credential.password_hash.as_str())
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}
