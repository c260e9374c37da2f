//! Bad URLs, unreachable servers, bad table names; tables shared by name.

mod test_database;

use std::time::Duration;

use kcl_core::{Checkpoint, Error, LeaseKey, LeaseStore, NewLease, ShardId, StreamName};
use kcl_store_postgres::{PostgresLeaseStore, PostgresLeaseStoreConfig};

#[tokio::test]
async fn a_url_that_does_not_parse_is_an_invalid_argument() {
    for bad in [
        "not a url",
        "mysql://x@localhost/db",
        "postgres://u:secret@host:notaport/db",
    ] {
        match PostgresLeaseStore::connect(bad).await {
            Err(Error::InvalidArgument { field, message }) => {
                assert_eq!(field, "database URL", "{bad}");
                assert!(
                    !message.contains("secret"),
                    "the password is not repeated: {message}"
                );
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_server_is_transient_and_named() {
    let config = PostgresLeaseStoreConfig::new("postgres://postgres@127.0.0.1:1/test")
        .acquire_timeout(Duration::from_secs(2));
    match PostgresLeaseStore::connect_with(config).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_database_is_a_storage_error_naming_it() {
    let Some(_) = test_database::admin_connection().await else {
        return;
    };
    let url = test_database::url();
    let missing = match url.rfind('/') {
        Some(slash) => format!("{}/kcl_no_such_database", &url[..slash]),
        None => return,
    };
    match PostgresLeaseStore::connect(&missing).await {
        Err(Error::Storage { message }) => {
            assert!(message.contains("kcl_no_such_database"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_table_name_outside_the_safe_alphabet_is_refused() {
    for bad in ["leases\"; DROP TABLE x; --", "Leases", "a-b", ""] {
        let config = PostgresLeaseStoreConfig::new(test_database::url()).table(bad);
        assert!(
            matches!(
                PostgresLeaseStore::connect_with(config).await,
                Err(Error::InvalidArgument { field: "table", .. })
            ),
            "{bad:?}"
        );
    }
}

/// Two applications on one database do not see each other's leases; two stores on one table
/// (two worker processes of one application) see the same ones, and connecting again (the
/// migrations) changes nothing.
#[tokio::test]
async fn the_table_name_separates_applications() {
    let Some(one) = test_database::fresh_config("app_one").await else {
        return;
    };
    let Some(two) = test_database::fresh_config("app_two").await else {
        return;
    };
    let (a, b) = (
        PostgresLeaseStore::connect_with(one.clone()).await.unwrap(),
        PostgresLeaseStore::connect_with(two).await.unwrap(),
    );
    let stream = StreamName::new("shared-stream").unwrap();
    let key = LeaseKey::new(stream.clone(), ShardId::from_index(0));
    assert!(
        a.create_lease_if_absent(&NewLease::new(key.clone(), Checkpoint::Latest))
            .await
            .unwrap()
    );
    assert!(b.list_leases(&stream).await.unwrap().is_empty());
    let a_again = PostgresLeaseStore::connect_with(one).await.unwrap();
    assert_eq!(a_again.list_leases(&stream).await.unwrap().len(), 1);
    assert_eq!(a_again.table(), a.table());
}
