//! The store contract: every behaviour kehai relies on, run against SQLite and PostgreSQL.
//!
//! PostgreSQL comes from `KEHAI_TEST_POSTGRES_URL` (each test gets a fresh database). Without it
//! the PostgreSQL half is skipped with a message — except with `CI=true`, where it fails.

#![allow(clippy::unwrap_used)]

mod backends;
mod contract;
mod migration;
mod one_writer;
mod privacy;
mod row_locks;

/// Generates one test per contract case and back end.
macro_rules! contract_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = crate::backends::sqlite().await;
                    crate::contract::$case(&*db.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = crate::backends::postgres().await else { return };
                    // Drop the test database whether the case passes or panics.
                    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                        crate::contract::$case(&*db.store),
                    ))
                    .await;
                    db.drop_database().await;
                    if let Err(panic) = outcome {
                        std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

contract_suite!(
    migrations_are_idempotent,
    spaces_are_unique_by_slug,
    accounts_are_unique_case_insensitively,
    members_get_an_avatar,
    membership_is_unique_and_needs_a_space,
    spaces_of_an_account,
    avatar_changes_keep_what_was_not_changed,
    presence_override_never_touches_own_emoji,
    guests_present_are_capped_per_space_and_its_guest_link_is_kept,
    guests_live_as_long_as_their_session,
    expired_sessions_are_not_found_and_are_purged,
    avatars_of_one_space_only,
    connections_are_saved_found_and_one_per_microsoft_account,
    connections_are_used_per_space_with_a_toggle,
    sign_ins_in_progress_are_single_use_and_expire,
    a_session_keeps_its_newest_sign_ins_only,
    the_newest_live_certificate_is_current,
    retired_certificates_stay_while_a_subscription_uses_them,
    named_claims_have_one_holder_until_they_lapse,
    refreshed_tokens_update_but_never_recreate_a_connection,
    presences_apply_in_sequence_order_with_their_sequence,
    many_presences_apply_in_one_group_commit_as_one_after_the_other,
    subscriptions_are_renewed_and_found_before_they_lapse,
    a_replaced_subscription_is_recognized_until_it_is_ended,
    a_member_connects_one_account_per_provider,
    connections_are_woken_when_their_presence_is_due_to_change,
    an_avatar_shows_the_strongest_of_its_providers_presences,
    two_providers_writing_at_once_leave_the_strongest_shown,
);
