// Package console is the web console served at / on the API's address:
// server-rendered pages (html/template) with a little progressive
// JavaScript (htmx and uPlot, vendored by `make ui-vendor`), assets
// embedded in the binary. Pages read through the service; actions go
// through the JSON API with fetch, so roles, validation and the audit log
// apply once. docs/ui.md describes the pages.
package console
