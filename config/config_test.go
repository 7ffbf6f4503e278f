package config

import (
	"strings"
	"testing"
)

func env(m map[string]string) Env { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.PublicURL != "http://127.0.0.1:8080" || c.DataDir != "./data" {
		t.Fatalf("defaults: %+v", c)
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite:///") || !strings.HasSuffix(c.DatabaseURL, "/data/gatehouse.db") {
		t.Fatalf("database url %q", c.DatabaseURL)
	}
	if !c.PublicURLIsLoopback() || c.SecureCookies() || c.Dev {
		t.Fatal("loopback/secure/dev defaults wrong")
	}
	if c.DatabaseMaxConns != 10 {
		t.Fatalf("database max conns %d, want 10", c.DatabaseMaxConns)
	}
	c, err = Load(nil, env(map[string]string{"GATEHOUSE_DATABASE_MAX_CONNS": " 4 "}))
	if err != nil || c.DatabaseMaxConns != 4 {
		t.Fatalf("GATEHOUSE_DATABASE_MAX_CONNS=4: %v, %v", c, err)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := Load([]string{"--addr", "0.0.0.0:9000"}, env(map[string]string{"GATEHOUSE_ADDR": "127.0.0.1:1", "GATEHOUSE_DEV": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.PublicURL != "http://localhost:9000" || !c.Dev {
		t.Fatalf("%+v", c)
	}
}

func TestInvalidNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GATEHOUSE_ADMIN_TOKEN": "short"}, "GATEHOUSE_ADMIN_TOKEN"},
		{map[string]string{"GATEHOUSE_ADDR": "nonsense"}, "GATEHOUSE_ADDR"},
		{map[string]string{"GATEHOUSE_PUBLIC_URL": "ftp://x"}, "GATEHOUSE_PUBLIC_URL"},
		{map[string]string{"GATEHOUSE_DATABASE_URL": "mysql://x"}, "GATEHOUSE_DATABASE_URL"},
		{map[string]string{"GATEHOUSE_ROOT_KEY": "abc"}, "GATEHOUSE_ROOT_KEY"},
		{map[string]string{"GATEHOUSE_LOG_LEVEL": "loud"}, "GATEHOUSE_LOG_LEVEL"},
		{map[string]string{"GATEHOUSE_LOG_FORMAT": "xml"}, "GATEHOUSE_LOG_FORMAT"},
		{map[string]string{"GATEHOUSE_SQLITE_SYNCHRONOUS": "OFF"}, "GATEHOUSE_SQLITE_SYNCHRONOUS"},
		{map[string]string{"GATEHOUSE_DATABASE_MAX_CONNS": "0"}, "GATEHOUSE_DATABASE_MAX_CONNS"},
		{map[string]string{"GATEHOUSE_DATABASE_MAX_CONNS": "ten"}, "GATEHOUSE_DATABASE_MAX_CONNS"},
		{map[string]string{"GATEHOUSE_DATABASE_MAX_CONNS": "1001"}, "GATEHOUSE_DATABASE_MAX_CONNS"},
		{map[string]string{"GATEHOUSE_OUTBOUND_ALLOW": "10.0.0.0/99"}, "GATEHOUSE_OUTBOUND_ALLOW"},
		{map[string]string{"GATEHOUSE_RATE_LIMIT_IP": "-1"}, "GATEHOUSE_RATE_LIMIT_IP"},
		{map[string]string{"GATEHOUSE_DEV": "maybe"}, "GATEHOUSE_DEV"},
		{map[string]string{"GATEHOUSE_RATE_LIMIT_TENANT": "lots"}, "GATEHOUSE_RATE_LIMIT_TENANT"},
	} {
		_, err := Load(nil, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v does not name %s", tc.env, err, tc.want)
		}
	}
}

func TestHTTPSPublicURL(t *testing.T) {
	c, err := Load(nil, env(map[string]string{"GATEHOUSE_PUBLIC_URL": "https://sso.acme.com/", "GATEHOUSE_OUTBOUND_ALLOW": "10.1.0.0/16, 192.168.1.5"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://sso.acme.com" || !c.SecureCookies() || c.PublicURLIsLoopback() || len(c.OutboundAllow) != 2 {
		t.Fatalf("%+v", c)
	}
}
