// Package testenv starts the real servers tests run against, on this host,
// on loopback ports and temporary directories, and stops every one of them.
//
// StartMariaDB gives each caller a fresh database on one mariadbd shared by
// the whole test binary; a package that uses it stops the server from its
// TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// When mariadbd is not installed the test is skipped, unless CI=true or
// REDIS_MANAGER_REQUIRE_MARIADB=1, where it fails: CI must not pass by
// skipping.
package testenv
