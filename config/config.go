// Package config reads Gatehouse's settings from flags and GATEHOUSE_*
// environment variables. Flags win over the environment. Every error names
// the variable or flag at fault.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse/outbound"
	"github.com/gatehouse-sso/gatehouse/tracing"
)

// Config is the server's configuration.
type Config struct {
	Addr        string
	PublicURL   string
	DataDir     string
	DatabaseURL string
	// AdminToken is the superuser bearer token from GATEHOUSE_ADMIN_TOKEN;
	// empty means "generate one on first start".
	AdminToken string
	Dev        bool
	// RootKey (32 bytes) from GATEHOUSE_ROOT_KEY; nil means the key file in
	// the data dir (created on first start).
	RootKey     []byte
	RootKeyFile string
	LogLevel    slog.Level
	LogFormat   string // text or json
	// SQLiteSynchronous is NORMAL (default) or FULL.
	SQLiteSynchronous string
	// DatabaseMaxConns bounds this replica's PostgreSQL connections
	// (GATEHOUSE_DATABASE_MAX_CONNS, default 10): replicas share the
	// server's max_connections. Ignored on SQLite (one writer).
	DatabaseMaxConns int
	// OutboundAllow lists the private/loopback networks tenant-supplied
	// URLs may reach (GATEHOUSE_OUTBOUND_ALLOW).
	OutboundAllow []netip.Prefix
	// TrustedProxies may set X-Forwarded-* headers.
	TrustedProxies []netip.Prefix
	// MetricsAddr moves /metrics to a listener of its own.
	MetricsAddr string
	// RateLimitIP and RateLimitTenant are requests per second on the
	// login, callback, token and SCIM endpoints (0 disables).
	RateLimitIP     float64
	RateLimitTenant float64
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration
	// Tracing is OpenTelemetry tracing, from the standard OTEL_* variables
	// and GATEHOUSE_TRACING; off unless an OTLP endpoint is set.
	Tracing tracing.Config
}

// Env is how configuration reads the environment (os.Getenv in main).
type Env func(string) string

// Load parses args (without the command name) over the environment.
func Load(args []string, getenv Env) (*Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	def := func(name, fallback string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return fallback
	}
	c := &Config{}
	devDefault := false
	switch v := strings.ToLower(def("GATEHOUSE_DEV", "")); v {
	case "1", "true", "yes", "on":
		devDefault = true
	case "", "0", "false", "no", "off":
	default:
		return nil, fmt.Errorf("GATEHOUSE_DEV %q: want 1 (a development instance) or 0", v)
	}
	fs.StringVar(&c.Addr, "addr", def("GATEHOUSE_ADDR", "127.0.0.1:8080"), "listen address (GATEHOUSE_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", def("GATEHOUSE_PUBLIC_URL", ""), "external base URL (GATEHOUSE_PUBLIC_URL; default derived from the address)")
	fs.StringVar(&c.DataDir, "data-dir", def("GATEHOUSE_DATA_DIR", "./data"), "data directory (GATEHOUSE_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", def("GATEHOUSE_DATABASE_URL", ""), "database URL: sqlite:///path.db or postgres://... (GATEHOUSE_DATABASE_URL; default SQLite in the data dir)")
	dev := fs.Bool("dev", devDefault, "development instance: mock connector and demo helpers (GATEHOUSE_DEV=1)")
	logLevel := fs.String("log-level", def("GATEHOUSE_LOG_LEVEL", "info"), "debug, info, warn or error (GATEHOUSE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", def("GATEHOUSE_LOG_FORMAT", "text"), "text or json (GATEHOUSE_LOG_FORMAT)")
	fs.StringVar(&c.SQLiteSynchronous, "sqlite-synchronous", def("GATEHOUSE_SQLITE_SYNCHRONOUS", "NORMAL"), "NORMAL or FULL (GATEHOUSE_SQLITE_SYNCHRONOUS)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", def("GATEHOUSE_METRICS_ADDR", ""), "serve /metrics on a listener of its own (GATEHOUSE_METRICS_ADDR)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.Dev = *dev
	c.AdminToken = getenv("GATEHOUSE_ADMIN_TOKEN")
	c.ShutdownTimeout = 10 * time.Second

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("GATEHOUSE_ADDR %q: want host:port: %v", c.Addr, err)
	}
	if c.PublicURL == "" {
		c.PublicURL = DerivePublicURL(c.Addr)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("GATEHOUSE_PUBLIC_URL %q: want an absolute http(s) URL without query or fragment", c.PublicURL)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")

	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		return nil, errors.New("GATEHOUSE_ADMIN_TOKEN: must be at least 32 characters (leave it unset to have one generated)")
	}
	if c.DatabaseURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.DataDir, "gatehouse.db"))
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_DATA_DIR: %v", err)
		}
		c.DatabaseURL = "sqlite://" + abs
	} else if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		return nil, fmt.Errorf("GATEHOUSE_DATABASE_URL: want sqlite:///path/to/file.db or postgres://..., have %q", redactURL(c.DatabaseURL))
	}
	if k := getenv("GATEHOUSE_ROOT_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			return nil, errors.New("GATEHOUSE_ROOT_KEY: want 32 bytes in standard base64 (openssl rand -base64 32)")
		}
		c.RootKey = key
	}
	c.RootKeyFile = def("GATEHOUSE_ROOT_KEY_FILE", filepath.Join(c.DataDir, "root.key"))

	switch strings.ToLower(*logLevel) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return nil, fmt.Errorf("GATEHOUSE_LOG_LEVEL %q: want debug, info, warn or error", *logLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return nil, fmt.Errorf("GATEHOUSE_LOG_FORMAT %q: want text or json", c.LogFormat)
	}
	c.SQLiteSynchronous = strings.ToUpper(c.SQLiteSynchronous)
	if c.SQLiteSynchronous != "NORMAL" && c.SQLiteSynchronous != "FULL" {
		return nil, fmt.Errorf("GATEHOUSE_SQLITE_SYNCHRONOUS %q: want NORMAL or FULL", c.SQLiteSynchronous)
	}
	if c.DatabaseMaxConns, err = parseCount(getenv, "GATEHOUSE_DATABASE_MAX_CONNS", 10, 1000); err != nil {
		return nil, err
	}
	if c.OutboundAllow, err = ParsePrefixes(getenv("GATEHOUSE_OUTBOUND_ALLOW")); err != nil {
		return nil, fmt.Errorf("GATEHOUSE_OUTBOUND_ALLOW: %v", err)
	}
	if c.TrustedProxies, err = ParsePrefixes(getenv("GATEHOUSE_TRUSTED_PROXIES")); err != nil {
		return nil, fmt.Errorf("GATEHOUSE_TRUSTED_PROXIES: %v", err)
	}
	if c.RateLimitIP, err = parseRate(getenv, "GATEHOUSE_RATE_LIMIT_IP", 2000); err != nil {
		return nil, err
	}
	if c.RateLimitTenant, err = parseRate(getenv, "GATEHOUSE_RATE_LIMIT_TENANT", 5000); err != nil {
		return nil, err
	}
	if c.Tracing, err = tracing.ConfigFromEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// parseRate reads a requests-per-second limit. The defaults are far above
// what one tenant's people or an IdP's initial SCIM sync send, and stop
// floods.
func parseRate(getenv Env, name string, def float64) (float64, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s %q: want a number of requests per second (0 disables)", name, v)
	}
	return f, nil
}

// parseCount reads a whole number between 1 and most.
func parseCount(getenv Env, name string, def, most int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("%s %q: want a whole number from 1 to %d", name, v, most)
	}
	return n, nil
}

// DerivePublicURL turns a listen address into a browsable URL.
func DerivePublicURL(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// ParsePrefixes parses comma-separated CIDRs or bare IPs (the outbound
// package's syntax, shared by every list of networks).
func ParsePrefixes(s string) ([]netip.Prefix, error) { return outbound.ParsePrefixes(s) }

// PublicURLIsLoopback reports whether the public URL's host is loopback, in
// which case outbound requests to loopback are allowed by default.
func (c *Config) PublicURLIsLoopback() bool {
	u, err := url.Parse(c.PublicURL)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// SecureCookies reports whether cookies must carry Secure.
func (c *Config) SecureCookies() bool { return strings.HasPrefix(c.PublicURL, "https://") }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
