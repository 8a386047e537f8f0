package dashboard

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestAssetsEmbedded(t *testing.T) {
	for _, name := range []string{"app.js", "app.css", "vendor/htmx/htmx.min.js", "vendor/htmx/LICENSE",
		"vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "vendor/uplot/LICENSE", "vendor/README.md"} {
		a, ok := assets[name]
		if !ok || len(a.body) == 0 {
			t.Errorf("%s not embedded", name)
		}
	}
	if _, err := fs.Stat(embedded, "templates/layout.html"); err != nil {
		t.Errorf("templates not embedded: %v", err)
	}
}

func TestStaticServing(t *testing.T) {
	s := newPageServer(t, Config{Auth: testToken(t)}) // static files need no credentials
	for name, ct := range map[string]string{
		"app.js":                         "text/javascript; charset=utf-8",
		"app.css":                        "text/css; charset=utf-8",
		"vendor/htmx/htmx.min.js":        "text/javascript; charset=utf-8",
		"vendor/uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8",
		"vendor/uplot/uPlot.min.css":     "text/css; charset=utf-8",
		"favicon.svg":                    "image/svg+xml",
		"vendor/htmx/LICENSE":            "text/plain; charset=utf-8",
	} {
		w := get(t, s, assetPath(name))
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", assetPath(name), w.Code)
		}
		h := w.Header()
		if h.Get("Content-Type") != ct {
			t.Errorf("%s: Content-Type %q, want %q", name, h.Get("Content-Type"), ct)
		}
		if cc := h.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", name, cc)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("ETag") == "" {
			t.Errorf("%s: headers %v", name, h)
		}
		if !bytes.Equal(w.Body.Bytes(), assets[name].body) {
			t.Errorf("%s: body differs", name)
		}

		// The ETag revalidates.
		w2 := get(t, s, assetPath(name), "If-None-Match", h.Get("ETag"))
		if w2.Code != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", name, w2.Code)
		}
	}

	// An old digest still serves the file, but not as immutable.
	w := get(t, s, "/static/000000000000/app.js")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("old digest: %d %q", w.Code, w.Header().Get("Cache-Control"))
	}
	for _, p := range []string{"/static/x/nothing.js", "/static/x/../pages.go", "/static/app.js"} {
		if w := get(t, s, p); w.Code == http.StatusOK {
			t.Errorf("GET %s: 200", p)
		}
	}
}

// The digest in an asset's path changes with its content.
func TestAssetPathHasTheDigest(t *testing.T) {
	sum := sha256.Sum256(assets["app.js"].body)
	if want := "/static/" + hex.EncodeToString(sum[:])[:12] + "/app.js"; assetPath("app.js") != want {
		t.Errorf("assetPath = %q, want %q", assetPath("app.js"), want)
	}
	defer func() {
		if recover() == nil {
			t.Error("assetPath of a missing file did not panic")
		}
	}()
	assetPath("missing.js")
}

// TestVendoredChecksums checks every vendored file against the sha256 its
// README records, and that every vendored file is recorded.
func TestVendoredChecksums(t *testing.T) {
	readme := assets["vendor/README.md"].body
	row := regexp.MustCompile(`^\| ([^ |]+) \| [^|]+ \| ([0-9a-f]{64}) \|$`)
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil || strings.HasPrefix(m[1], "http") || !strings.Contains(m[1], "/") {
			continue
		}
		a, ok := assets["vendor/"+m[1]]
		if !ok {
			t.Errorf("README lists %s, which is not vendored", m[1])
			continue
		}
		sum := sha256.Sum256(a.body)
		if got := hex.EncodeToString(sum[:]); got != m[2] {
			t.Errorf("%s: sha256 %s, README says %s", m[1], got, m[2])
		}
		seen[m[1]] = true
	}
	for name := range assets {
		if rest, ok := strings.CutPrefix(name, "vendor/"); ok && rest != "README.md" && !seen[rest] {
			t.Errorf("vendored %s has no checksum in the README", rest)
		}
	}
	if len(seen) < 5 {
		t.Errorf("only %d files checked", len(seen))
	}
}

// The pages reference only embedded assets (assetPath panics otherwise, at
// render time): render them all once more through a recorder to be sure the
// static routes answer for each.
func TestPagesReferenceServedAssets(t *testing.T) {
	s := newPageServer(t, Config{})
	html := renderPage(t, "overview", sampleViews(testPage)["overview"])
	refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 5 {
		t.Fatalf("only %d static references", len(refs))
	}
	for _, m := range refs {
		r := httptest.NewRequest(http.MethodGet, m[1], nil)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", m[1], w.Code)
		}
	}
}
