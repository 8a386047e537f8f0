package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// The pages' templates and static files are compiled into the binary.
//
//go:embed static templates
var embedded embed.FS

// asset is one static file, held in memory with its digest.
type asset struct {
	body        []byte
	contentType string
	hash        string // the first 12 hex digits of its SHA-256
	etag        string
}

// assets are the static files by their path under static/ ("app.js").
var assets = mustLoadAssets(embedded)

// contentTypes are the types of the static files, fixed here rather than
// taken from the host's mime.types, which differ from one system to another.
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".md":   "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE
}

func mustLoadAssets(fsys fs.FS) map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = mime.TypeByExtension(path.Ext(p))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])[:12]
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: ct, hash: h, etag: `"` + h + `"`}
		return nil
	})
	if err != nil {
		panic("dashboard: embedded assets: " + err.Error())
	}
	return out
}

// assetPath returns the URL of a static file, with its digest in the path so
// that it can be cached for good: /static/<hash>/<name>. It panics on a
// name that is not embedded, which the templates' tests catch.
func assetPath(name string) string {
	a, ok := assets[name]
	if !ok {
		panic("dashboard: no static file " + name)
	}
	return "/static/" + a.hash + "/" + name
}

// serveStatic serves GET /static/{hash}/{name...}. A path with the file's
// current digest is immutable and cached for a year; any other digest (a page
// from before an upgrade) still gets the file, revalidated by its ETag.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", a.etag)
	if r.PathValue("hash") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	// ServeContent answers If-None-Match (with the ETag set above) and
	// ranges; the zero modification time leaves Last-Modified out.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
