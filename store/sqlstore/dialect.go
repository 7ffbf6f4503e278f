package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// dialect is everything that differs between the engines. The SQL text
// does not: see the package comment.
type dialect struct {
	name    string // "sqlite" or "postgres", as Store.Engine reports
	goose   goose.Dialect
	dir     string // migrations directory in migrations.FS
	writeTx *sql.TxOptions
	readTx  *sql.TxOptions
	// connect opens the writer and reader pools and checks that the
	// database answers.
	connect func(ctx context.Context, target string, opts Options, w *writerTx) (writer, reader *sql.DB, err error)
}

var sqliteDialect = &dialect{
	name:  "sqlite",
	goose: goose.DialectSQLite3,
	dir:   "sqlite",
	// The writer's DSN makes every transaction BEGIN IMMEDIATE (_txlock),
	// so a write never upgrades a read lock and fails with SQLITE_BUSY
	// half-way; readers run on query_only connections.
	writeTx: nil,
	readTx:  nil,
	connect: connectSQLite,
}

var postgresDialect = &dialect{
	name:    "postgres",
	goose:   goose.DialectPostgres,
	dir:     "postgres",
	writeTx: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	// A View reads one snapshot, as it does on SQLite (a WAL read
	// transaction): a list and the groups filled in for it agree. A
	// read-only REPEATABLE READ transaction never fails to serialize.
	readTx:  &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	connect: connectPostgres,
}

// parseURL picks the engine for databaseURL and returns the driver's data
// source (a file path for SQLite, the URL itself for PostgreSQL).
func parseURL(databaseURL string) (*dialect, string, error) {
	u := strings.TrimSpace(databaseURL)
	switch {
	case u == "":
		return nil, "", invalidURL("the database URL is empty")
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if _, err := url.Parse(u); err != nil {
			// url.Error quotes the URL, password included: keep it out.
			return nil, "", invalidURL("the PostgreSQL URL does not parse")
		}
		return postgresDialect, u, nil
	case strings.HasPrefix(u, "sqlite://"):
		// sqlite:///abs/path.db → /abs/path.db; sqlite://rel/path.db → rel/path.db
		path := strings.TrimPrefix(u, "sqlite://")
		return sqlitePath(path)
	case strings.Contains(u, "://"):
		scheme, _, _ := strings.Cut(u, "://")
		return nil, "", invalidURL(fmt.Sprintf("unsupported database URL scheme %q (use sqlite:// or postgres://)", scheme))
	default:
		return sqlitePath(u)
	}
}

func sqlitePath(path string) (*dialect, string, error) {
	if path == "" {
		return nil, "", invalidURL("the SQLite URL names no file")
	}
	// The driver reads parameters after '?'; a path holding one would be
	// cut in two.
	if strings.ContainsAny(path, "?#") {
		return nil, "", invalidURL("the SQLite file path may not contain '?' or '#'")
	}
	return sqliteDialect, path, nil
}

func invalidURL(msg string) error {
	return &gatehouse.Error{Code: gatehouse.EINVALID, Field: "database_url", Message: msg + "."}
}

// connectSQLite opens the writer (one connection, its transactions followed
// by w) and the reader pool.
func connectSQLite(ctx context.Context, path string, opts Options, w *writerTx) (*sql.DB, *sql.DB, error) {
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "NORMAL"
	case "NORMAL", "FULL":
	default:
		return nil, nil, &gatehouse.Error{Code: gatehouse.EINVALID, Field: "synchronous",
			Message: fmt.Sprintf("SQLite synchronous must be NORMAL or FULL, not %q.", opts.Synchronous)}
	}
	// busy_timeout covers other processes (a `gatehouse migrate` next to
	// a running server); inside the process the single writer connection
	// already queues writers.
	common := "_busy_timeout=10000&_foreign_keys=1&_pragma=temp_store(memory)"
	drv, err := sqliteDriver()
	if err != nil {
		return nil, nil, mapErr(err)
	}
	writer := sql.OpenDB(&sqliteConnector{drv: drv, dsn: path + "?" + common + "&_journal_mode=WAL&_synchronous=" + sync + "&_txlock=immediate", uninterruptible: true, tx: w})
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The writer connects first: it creates the file and switches it to
	// WAL, which readers need to run next to a writer.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, nil, mapErr(err)
	}
	reader := sql.OpenDB(&sqliteConnector{drv: drv, dsn: path + "?" + common + "&_query_only=1"})
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	reader.SetConnMaxIdleTime(5 * time.Minute)
	if err := reader.PingContext(ctx); err != nil {
		writer.Close()
		reader.Close()
		return nil, nil, mapErr(err)
	}
	return writer, reader, nil
}

// sqliteDriver is the driver modernc.org/sqlite registers as "sqlite".
func sqliteDriver() (driver.Driver, error) {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.Driver(), nil
}

// connectPostgres opens one pool for reads and writes. Sizes suit a small
// machine (2 cores): more connections than that only queue inside the
// server; several replicas share the server's max_connections (100 by
// default).
func connectPostgres(ctx context.Context, dsn string, opts Options, _ *writerTx) (*sql.DB, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	db := sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg)})
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 10
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, nil, mapErr(err)
	}
	return db, db, nil
}
