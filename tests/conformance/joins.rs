//! Joins along relations in projections, on every store: columns reached through
//! `belongs_to` / `has_one` chains (a missing related row gives `None`), grouping and ordering
//! on them, and aggregates over `has_many` / `many_to_many` relations (0 / `None` without
//! related rows), including top-N orderings on them. PostgreSQL and SQLite lower them to
//! `LEFT JOIN`s and correlated subqueries, MongoDB to `$lookup` stages: the rows must agree.

use polystore::Rel;
use polystore::prelude::*;
use polystore::query::count_all;
use polystore_tests::{StoreKind, TestStore as _, assert_err, store_test};
use rust_decimal::Decimal;

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_artists")]
struct Artist {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(has_one)]
    profile: Rel<Option<Profile>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_profiles")]
struct Profile {
    #[model(primary_key, generated)]
    id: i64,
    #[model(unique)]
    artist_id: i64,
    country: String,
    #[model(belongs_to)]
    artist: Rel<Artist>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_albums")]
struct Album {
    #[model(primary_key, generated)]
    id: i64,
    title: String,
    artist_id: Option<i64>,
    #[model(belongs_to(key = artist_id, on_delete = "set_null"))]
    artist: Rel<Option<Artist>>,
    #[model(has_many(foreign_key = album_id))]
    tracks: Rel<Vec<Track>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_tracks")]
struct Track {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    album_id: i64,
    ms: i32,
    price: Decimal,
    #[model(belongs_to)]
    album: Rel<Album>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_playlists")]
struct Playlist {
    #[model(primary_key, generated)]
    id: i64,
    name: String,
    #[model(many_to_many(through = PlaylistTrack))]
    tracks: Rel<Vec<Track>>,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_playlist_tracks", primary_key(playlist_id, track_id))]
struct PlaylistTrack {
    playlist_id: i64,
    track_id: i64,
    #[model(belongs_to(on_delete = "cascade"))]
    playlist: Rel<Playlist>,
    #[model(belongs_to(on_delete = "cascade"))]
    track: Rel<Track>,
}

const SCHEMAS: &[&polystore::ModelSchema] =
    &[Artist::SCHEMA, Profile::SCHEMA, Album::SCHEMA, Track::SCHEMA, Playlist::SCHEMA, PlaylistTrack::SCHEMA];

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn texts<const N: usize>(values: [Option<Decimal>; N]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(|v| v.to_string())).collect()
}

/// Artists 1 AC/DC (profile AU), 2 Björk, 3 Nobody (no albums). Albums 1 Back in Black (AC/DC),
/// 2 Post (Björk), 3 Unknown (no artist), 4 Empty (Björk, no tracks). Tracks 1–2 on album 1,
/// 3–4 on album 2, 5 on album 3. Playlists 1 Rock (tracks 1, 2), 2 Mix (1, 3, 5), 3 Silence
/// (none).
async fn seed<E: Executor + Copy>(db: E) -> Result<()> {
    let artist = |name: &str| Artist { id: 0, name: name.into(), profile: Rel::NotLoaded };
    Artist::insert_many(db, &[artist("AC/DC"), artist("Björk"), artist("Nobody")]).await?;
    Profile { id: 0, artist_id: 1, country: "AU".into(), artist: Rel::NotLoaded }.insert(db).await?;
    let album = |title: &str, artist_id| Album {
        id: 0,
        title: title.into(),
        artist_id,
        artist: Rel::NotLoaded,
        tracks: Rel::NotLoaded,
    };
    let albums =
        [album("Back in Black", Some(1)), album("Post", Some(2)), album("Unknown", None), album("Empty", Some(2))];
    Album::insert_many(db, &albums).await?;
    let track = |name: &str, album_id, ms, price: &str| Track {
        id: 0,
        name: name.into(),
        album_id,
        ms,
        price: d(price),
        album: Rel::NotLoaded,
    };
    let tracks = [
        track("Hells Bells", 1, 312, "0.99"),
        track("Shoot to Thrill", 1, 317, "0.99"),
        track("Army of Me", 2, 234, "1.29"),
        track("Hyperballad", 2, 321, "1.29"),
        track("Mystery", 3, 100, "0.50"),
    ];
    Track::insert_many(db, &tracks).await?;
    let playlist = |name: &str| Playlist { id: 0, name: name.into(), tracks: Rel::NotLoaded };
    Playlist::insert_many(db, &[playlist("Rock"), playlist("Mix"), playlist("Silence")]).await?;
    let link = |playlist_id, track_id| PlaylistTrack {
        playlist_id,
        track_id,
        playlist: Rel::NotLoaded,
        track: Rel::NotLoaded,
    };
    PlaylistTrack::insert_many(db, &[link(1, 1), link(1, 2), link(2, 1), link(2, 3), link(2, 5)]).await?;
    Ok(())
}

store_test!(columns_through_belongs_to_and_has_one_chains_agree, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let artist = Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let rows: Vec<(String, String, Option<String>, i64)> = Track::query()
        .filter(Track::MS.ge(100))
        .order_by(Track::ID.asc())
        .select((Track::NAME, Track::ALBUM.then(Album::TITLE), artist, Track::ALBUM.then(Album::ID)))
        .all(&db)
        .await?;
    let expected = [
        ("Hells Bells", "Back in Black", Some("AC/DC"), 1),
        ("Shoot to Thrill", "Back in Black", Some("AC/DC"), 1),
        ("Army of Me", "Post", Some("Björk"), 2),
        ("Hyperballad", "Post", Some("Björk"), 2),
        ("Mystery", "Unknown", None, 3),
    ];
    let expected: Vec<_> =
        expected.iter().map(|(n, t, a, id)| (n.to_string(), t.to_string(), a.map(str::to_owned), *id)).collect();
    assert_eq!(rows, expected);

    // Three hops, the last a has_one: only AC/DC has a profile.
    let country = Track::ALBUM.then(Album::ARTIST).then(Artist::PROFILE).then(Profile::COUNTRY);
    let rows: Vec<(i64, Option<String>)> =
        Track::query().order_by(Track::ID.asc()).select((Track::ID, country)).all(&db).await?;
    assert_eq!(rows, [(1, Some("AU".into())), (2, Some("AU".into())), (3, None), (4, None), (5, None)]);

    // A has_one from the owning side, and an optional link with no row at all (Nobody).
    let rows: Vec<(String, Option<String>)> = Artist::query()
        .order_by(Artist::ID.asc())
        .select((Artist::NAME, Artist::PROFILE.then(Profile::COUNTRY)))
        .all(&db)
        .await?;
    assert_eq!(rows, [("AC/DC".into(), Some("AU".into())), ("Björk".into(), None), ("Nobody".into(), None)]);
    Ok::<_, Error>(())
});

store_test!(ordering_on_a_joined_column_puts_null_first_ascending, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let artist = || Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let ids = |rows: Vec<(i64,)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    let desc = Track::query().select((Track::ID,)).order_by(artist().desc()).order_by(Track::ID.asc());
    assert_eq!(ids(desc.all(&db).await?), [3, 4, 1, 2, 5], "NULL (no artist) last descending");
    // The joined ordering was added first, so it takes precedence over the field ordering.
    let asc = Track::query().select((Track::ID,)).order_by(artist().asc()).order_by(Track::ID.desc());
    assert_eq!(ids(asc.all(&db).await?), [5, 2, 1, 4, 3], "NULL first ascending");
    let top = Track::query().select((Track::ID,)).order_by(artist().desc()).order_by(Track::ID.desc()).limit(3);
    assert_eq!(ids(top.all(&db).await?), [4, 3, 2]);
    Ok::<_, Error>(())
});

store_test!(grouping_by_a_joined_column_agrees, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let artist = || Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let rows: Vec<(Option<String>, i64, Option<Decimal>)> = Track::query()
        .select((artist(), count_all::<Track>(), Track::PRICE.sum()))
        .group_by(artist())
        .order_by(artist().asc())
        .all(&db)
        .await?;
    let names: Vec<_> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
    assert_eq!(names, [(None, 1), (Some("AC/DC".into()), 2), (Some("Björk".into()), 2)]);
    assert_eq!(
        texts([rows[0].2, rows[1].2, rows[2].2]),
        [Some("0.50".into()), Some("1.98".into()), Some("2.58".into())]
    );

    // A joined column in a grouped projection must be a group key, on every store.
    let ungrouped = Track::query().group_by(Track::ALBUM_ID).select((Track::ALBUM_ID, artist()));
    assert_err!(ungrouped.all(&db).await, Error::Config(m) if m.contains("group key"));
    Ok::<_, Error>(())
});

/// Title, track count, average price, first track name, total and average length.
type AlbumStats = (String, i64, Option<Decimal>, Option<String>, Option<i64>, Option<f64>);

store_test!(relation_aggregates_count_zero_and_null_without_related_rows, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let rows: Vec<(String, i64, Option<Decimal>, Option<i32>)> = Playlist::query()
        .order_by(Playlist::ID.asc())
        .select((
            Playlist::NAME,
            Playlist::TRACKS.count(),
            Playlist::TRACKS.sum(Track::PRICE),
            Playlist::TRACKS.max(Track::MS),
        ))
        .all(&db)
        .await?;
    let counts: Vec<_> = rows.iter().map(|r| (r.0.as_str(), r.1, r.3)).collect();
    assert_eq!(counts, [("Rock", 2, Some(317)), ("Mix", 3, Some(312)), ("Silence", 0, None)]);
    assert_eq!(texts([rows[0].2, rows[1].2, rows[2].2]), [Some("1.98".into()), Some("2.78".into()), None]);

    let rows: Vec<AlbumStats> = Album::query()
        .order_by(Album::ID.asc())
        .select((
            Album::TITLE,
            Album::TRACKS.count(),
            Album::TRACKS.avg(Track::PRICE),
            Album::TRACKS.min(Track::NAME),
            Album::TRACKS.sum(Track::MS),
            Album::TRACKS.avg(Track::MS),
        ))
        .all(&db)
        .await?;
    let plain: Vec<_> = rows.iter().map(|r| (r.0.as_str(), r.1, r.3.clone(), r.4, r.5)).collect();
    assert_eq!(
        plain,
        [
            ("Back in Black", 2, Some("Hells Bells".into()), Some(629), Some(314.5)),
            ("Post", 2, Some("Army of Me".into()), Some(555), Some(277.5)),
            ("Unknown", 1, Some("Mystery".into()), Some(100), Some(100.0)),
            ("Empty", 0, None, None, None),
        ]
    );
    assert_eq!(
        texts([rows[0].2, rows[1].2, rows[2].2, rows[3].2]),
        [Some("0.99".into()), Some("1.29".into()), Some("0.5".into()), None]
    );
    Ok::<_, Error>(())
});

store_test!(top_n_by_a_relation_aggregate, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let top: Vec<(String, Option<i64>)> = Album::query()
        .select((Album::TITLE, Album::TRACKS.sum(Track::MS)))
        .order_by(Album::TRACKS.sum(Track::MS).desc())
        .limit(2)
        .all(&db)
        .await?;
    assert_eq!(top, [("Back in Black".into(), Some(629)), ("Post".into(), Some(555))]);
    // Ordered on an aggregate that is not selected; ties broken by name.
    let names: Vec<String> = Playlist::query()
        .filter(Playlist::NAME.ne("nothing"))
        .select(Playlist::NAME)
        .order_by(Playlist::TRACKS.count().asc())
        .order_by(Playlist::NAME.asc())
        .all(&db)
        .await?;
    assert_eq!(names, ["Silence", "Rock", "Mix"]);
    let busiest: Vec<(String, i64)> = Playlist::query()
        .select((Playlist::NAME, Playlist::TRACKS.count()))
        .order_by(Playlist::TRACKS.count().desc())
        .first(&db)
        .await?
        .into_iter()
        .collect();
    assert_eq!(busiest, [("Mix".into(), 3)]);
    // A relation aggregate is a value per row: it does not mix with grouping, on every store.
    let grouped = Album::query().group_by(Album::ARTIST_ID).select((Album::ARTIST_ID, Album::TRACKS.count()));
    assert_err!(grouped.all(&db).await, Error::Config(m) if m.contains("relation aggregate"));
    Ok::<_, Error>(())
});

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "cj_employees")]
struct Employee {
    #[model(primary_key)]
    id: i64,
    name: String,
    reports_to: Option<i64>,
    #[model(has_many(foreign_key = reports_to))]
    reports: Rel<Vec<Employee>>,
}

/// 1 Ada (CEO) ← 2 Bob, 3 Cy; 2 Bob ← 4 Dee, 5 Eve; 4 Dee ← 6 Fay; 7 Gus stands alone.
async fn org<E: Executor + Copy>(db: E) -> Result<()> {
    let e = |id, name: &str, reports_to| Employee { id, name: name.into(), reports_to, reports: Rel::NotLoaded };
    let staff = [
        e(1, "Ada", None),
        e(2, "Bob", Some(1)),
        e(3, "Cy", Some(1)),
        e(4, "Dee", Some(2)),
        e(5, "Eve", Some(2)),
        e(6, "Fay", Some(4)),
        e(7, "Gus", None),
    ];
    Employee::insert_many(db, &staff).await?;
    Ok(())
}

fn names(rows: Vec<Employee>) -> Vec<String> {
    rows.into_iter().map(|e| e.name).collect()
}

store_test!(recursive_descendants_and_ancestors_agree, |db| async move {
    db.create_all(&[Employee::SCHEMA]).await?;
    org(&db).await?;
    // Nearest first, then by key.
    assert_eq!(names(Employee::REPORTS.descendants(1).all(&db).await?), ["Bob", "Cy", "Dee", "Eve", "Fay"]);
    assert_eq!(names(Employee::REPORTS.descendants(1).max_depth(2).all(&db).await?), ["Bob", "Cy", "Dee", "Eve"]);
    assert_eq!(names(Employee::REPORTS.descendants(2).max_depth(1).all(&db).await?), ["Dee", "Eve"]);
    assert_eq!(names(Employee::REPORTS.descendants(6).all(&db).await?), Vec::<String>::new());
    assert_eq!(names(Employee::REPORTS.descendants(99).all(&db).await?), Vec::<String>::new());
    assert_eq!(names(Employee::REPORTS.ancestors(6).all(&db).await?), ["Dee", "Bob", "Ada"]);
    assert_eq!(names(Employee::REPORTS.ancestors(6).max_depth(2).all(&db).await?), ["Dee", "Bob"]);
    assert_eq!(names(Employee::REPORTS.ancestors(1).all(&db).await?), Vec::<String>::new());
    assert_eq!(names(Employee::REPORTS.descendants(1).max_depth(0).all(&db).await?), Vec::<String>::new());
    Ok::<_, Error>(())
});

store_test!(recursive_traversal_stops_on_a_cycle, |db| async move {
    db.create_all(&[Employee::SCHEMA]).await?;
    let e = |id, name: &str, reports_to| Employee { id, name: name.into(), reports_to, reports: Rel::NotLoaded };
    // 1 → 2 → 3 → 1: each is reported once, at its smallest depth.
    Employee::insert_many(&db, &[e(1, "A", Some(3)), e(2, "B", Some(1)), e(3, "C", Some(2))]).await?;
    assert_eq!(names(Employee::REPORTS.descendants(1).all(&db).await?), ["B", "C", "A"]);
    assert_eq!(names(Employee::REPORTS.ancestors(1).all(&db).await?), ["C", "B", "A"]);
    Ok::<_, Error>(())
});

store_test!(a_joined_column_in_filters_arithmetic_and_having, |db| async move {
    db.create_all(SCHEMAS).await?;
    seed(&db).await?;
    let artist = || Track::ALBUM.then(Album::ARTIST).then(Artist::NAME);
    let by_artist = Track::query().filter(artist().calc().eq("Björk")).order_by(Track::ID.asc());
    if db.kind() == StoreKind::Mongo {
        // MongoDB reads related columns only in projections: a clear refusal, never other rows.
        assert_err!(by_artist.all(&db).await, Error::Unsupported { store: "mongodb", .. });
        let per_title = Track::query().filter(Track::ALBUM.then(Album::TITLE).calc().ne("Post"));
        assert_err!(per_title.count(&db).await, Error::Unsupported { store: "mongodb", .. });
        return Ok(());
    }
    let ids = |rows: Vec<Track>| rows.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(by_artist.all(&db).await?), [3, 4]);
    // Through a missing link the column is NULL: unknown, so not selected, negated or not.
    let not_bjork = Track::query().filter(artist().calc().eq("Björk").not()).order_by(Track::ID.asc());
    assert_eq!(ids(not_bjork.all(&db).await?), [1, 2]);
    // Three hops ending in a has_one, compared with a field of the queried model.
    let country = Track::ALBUM.then(Album::ARTIST).then(Artist::PROFILE).then(Profile::COUNTRY);
    assert_eq!(Track::query().filter(country.calc().eq("AU")).count(&db).await?, 2);
    // Arithmetic with a joined column, selected and filtered on.
    let album_id = || Track::ALBUM.then(Album::ID);
    let rows: Vec<(i64, i64)> = Track::query()
        .filter((album_id().calc() * 100).lt(Track::MS))
        .order_by(Track::ID.asc())
        .select((Track::ID, Track::MS - album_id().calc() * 100))
        .all(&db)
        .await?;
    assert_eq!(rows, [(1, 212), (2, 217), (3, 34), (4, 121)]);
    // In `having`: the track count per album (a group key), but not for "Post".
    let named: Vec<(i64, i64)> = Track::query()
        .group_by(Track::ALBUM_ID)
        .having(Track::ALBUM.then(Album::TITLE).calc().ne("Post"))
        .order_by(Track::ALBUM_ID.asc())
        .select((Track::ALBUM_ID, count_all::<Track>()))
        .all(&db)
        .await?;
    assert_eq!(named, [(1, 2), (3, 1)]);
    Ok::<_, Error>(())
});
