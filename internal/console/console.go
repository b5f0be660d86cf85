package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Service is what the pages read: the cluster service's reads
// (server.Service has them all).
type Service interface {
	ListClusters(ctx context.Context) ([]api.Cluster, error)
	GetCluster(ctx context.Context, name string) (api.Cluster, error)
	Events(ctx context.Context, name string) ([]api.Event, error)
	ListJobs(ctx context.Context, cluster string) ([]api.Job, error)
	GetJob(ctx context.Context, id string) (api.Job, error)
	ListBackups(ctx context.Context, cluster string) ([]api.Backup, error)
	GetBackupSchedule(ctx context.Context, cluster string) (api.BackupSchedule, error)
}

// User is a console user as the users page lists it (never a hash).
type User struct {
	Name      string
	Role      auth.Role
	CreatedAt time.Time
}

// Token is an API token as the users page lists it (never its secret).
type Token struct {
	Name       string
	Role       auth.Role
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	At        time.Time
	Principal string
	Kind      string
	Remote    string
	Method    string
	Path      string
	Status    int
	Summary   string
}

// Access is what the users and audit pages read; nil: those pages say
// the manager keeps no users.
type Access interface {
	ListUsers(ctx context.Context) ([]User, error)
	ListTokens(ctx context.Context) ([]Token, error)
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)
}

// Config is what the console serves.
type Config struct {
	Service Service
	Access  Access
	// Alerts lists the alerts the leader keeps (store.Alerts); nil: the
	// overview shows "—" and the cluster page no alerts.
	Alerts AlertSource
	// Autoscaling shows the cluster's autoscaling policy, state and
	// decisions (store.Autoscaling); nil: the cluster page has no such card.
	Autoscaling AutoscaleSource
	Version     string
	Log         *slog.Logger
}

// AlertSource is what the console reads of the alert rules' state.
type AlertSource interface {
	ListAlerts(ctx context.Context) ([]api.Alert, error)
}

// ContentSecurityPolicy is sent with every page: no inline script or
// style, everything from this origin.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type console struct {
	cfg    Config
	assets assets
	pages  map[string]*template.Template
	log    *slog.Logger
}

// New returns the console's handler. It panics when the embedded
// templates do not parse (a build defect the tests catch).
func New(cfg Config) http.Handler {
	c, err := newConsole(cfg)
	if err != nil {
		panic(err)
	}
	return c.routes()
}

func newConsole(cfg Config) (*console, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	c := &console{cfg: cfg, assets: a, pages: map[string]*template.Template{}, log: log}
	funcs := templateFuncs(a)
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	for _, name := range []string{"sign-in", "overview", "cluster", "create", "events", "jobs", "job", "audit", "users", "account", "message"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return c, nil
}

func (c *console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/", c.assets.serve)
	mux.HandleFunc("GET /sign-in", c.signIn)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, c.assets.mustURL("favicon.svg"), http.StatusMovedPermanently)
	})
	mux.Handle("GET /{$}", c.signedIn(c.overview))
	mux.Handle("GET /clusters/new", c.signedIn(c.create))
	mux.Handle("GET /clusters/{name}", c.signedIn(c.cluster))
	mux.Handle("GET /events", c.signedIn(c.events))
	mux.Handle("GET /jobs", c.signedIn(c.jobs))
	mux.Handle("GET /jobs/{id}", c.signedIn(c.job))
	mux.Handle("GET /audit", c.signedIn(c.audit))
	mux.Handle("GET /users", c.signedIn(c.users))
	mux.Handle("GET /account", c.signedIn(c.account))
	mux.Handle("/", c.signedIn(func(r *http.Request, v *view) (int, error) {
		return http.StatusNotFound, errNotFound
	}))
	return mux
}

var errNotFound = errors.New("no such page")

// view is what every page template gets.
type view struct {
	Title string
	// Page is the <main data-page> hook.
	Page      string
	Principal auth.Principal
	// CanOperate and CanAdmin decide which action buttons exist.
	CanOperate bool
	CanAdmin   bool
	CSRF       string
	Version    string
	// Stream is the EventSource URL of the page's live updates.
	Stream string
	// LiveURL is where a filtered list page fetches its live regions.
	LiveURL string
	Data    any
	// Message is the text of the message page (errors, forbidden).
	Message string
	Path    string
	// Fragment is set when only the page's live regions are rendered
	// (?fragment=live): each region then carries hx-swap-oob.
	Fragment bool
	tmpl     string
}

// pageFunc fills v (its Title, Page, Data, tmpl) and returns the status,
// or an error.
type pageFunc func(r *http.Request, v *view) (int, error)

// signedIn redirects to the sign-in page without a principal, and renders
// the page (or only the fragment ?fragment= names) otherwise.
func (c *console) signedIn(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/sign-in?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		v := &view{Principal: p, CanOperate: p.Role.Allows(auth.Operator), CanAdmin: p.Role.Allows(auth.Admin),
			CSRF: p.CSRF, Version: c.cfg.Version, Path: r.URL.Path}
		start := time.Now()
		status, err := f(r, v)
		if err != nil {
			status, v.Message = c.failure(status, err, r)
			v.Title, v.Page, v.tmpl, v.Data = http.StatusText(status), "message", "message", nil
		}
		if status == 0 {
			status = http.StatusOK
		}
		c.render(w, r, status, v)
		c.log.Debug("console page", "path", r.URL.Path, "status", status, "took", time.Since(start))
	})
}

// failure maps an error to the status and text of the message page.
func (c *console) failure(status int, err error, r *http.Request) (int, string) {
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "There is no page at " + r.URL.Path + "."
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case status == http.StatusForbidden:
		return status, err.Error()
	}
	c.log.Error("console page failed", "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "The page could not be read: " + err.Error()
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// render executes the page into a buffer first, so a template error
// becomes a 500 rather than half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, v *view) {
	t := c.pages[v.tmpl]
	name := "layout.html"
	if frag := r.URL.Query().Get("fragment"); frag != "" && status == http.StatusOK {
		if t.Lookup("fragment-"+frag) == nil {
			http.Error(w, "unknown fragment", http.StatusNotFound)
			return
		}
		name = "fragment-" + frag
		v.Fragment = true
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, v); err != nil {
		c.log.Error("console template", "page", v.tmpl, "err", err)
		setPageHeaders(w)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("internal error rendering the page"))
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// signIn renders the sign-in form, also to a signed-in visitor: signing
// in again (as someone else) replaces the session.
func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	v := &view{Title: "Sign in", Page: "sign-in", tmpl: "sign-in", Version: c.cfg.Version, Data: next, Path: r.URL.Path}
	c.render(w, r, http.StatusOK, v)
}

// safeNext keeps a redirect target on this site: a path, never
// "//host" or a scheme.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/sign-in") {
		return "/"
	}
	return next
}
