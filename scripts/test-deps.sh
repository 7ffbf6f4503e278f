#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, only when missing, so a fresh
# machine passes `make test`. Everything comes from Debian's packages or the
# npm registry (test tools only).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq >/dev/null
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL: the local cluster (trust auth, database `test`).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
	if command -v pg_ctlcluster >/dev/null 2>&1; then
		echo "test-deps: starting the local PostgreSQL cluster"
		pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
		for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	fi
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
	psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 ||
		psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
fi

# npm test tools (oidc-provider as a real OpenID provider; playwright-core).
if [ -f testing/package.json ]; then
	if [ ! -d testing/node_modules ] || [ testing/package.json -nt testing/node_modules ]; then
		echo "test-deps: npm install in testing/"
		(cd testing && npm install --no-audit --no-fund --loglevel=error)
		touch testing/node_modules
	fi
fi

# Debian packages for end-to-end tests (added as the suites need them).
need=()
for spec in ${GATEHOUSE_TEST_DEBS:-}; do
	cmd=${spec%%:*}; pkg=${spec#*:}
	command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "test-deps: apt-get install ${need[*]}"
	apt_install "${need[@]}"
fi

# Chromium for the console's browser tests (playwright-core drives Debian's
# chromium at /usr/bin/chromium; no browser download from npm).
command -v chromium >/dev/null 2>&1 || { echo "test-deps: apt-get install chromium"; apt_install chromium; }

# SimpleSAMLphp as a real SAML IdP for e2e/saml_e2e_test.go (SAML helper's
# block): served by `php -S` on loopback, configured from testing/saml.
# php-xml gives PHP the DOM extension SimpleSAMLphp needs.
if [ ! -f /usr/share/simplesamlphp/www/saml2/idp/SSOService.php ] || ! command -v php >/dev/null 2>&1 ||
	! php -m 2>/dev/null | grep -qx dom; then
	echo "test-deps: apt-get install simplesamlphp php-cli php-xml php-mbstring"
	apt_install simplesamlphp php-cli php-xml php-mbstring
fi
