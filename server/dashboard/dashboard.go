// Package dashboard is Vigil's web dashboard for an on-call engineer:
// static assets embedded in the binary (no CDN, works offline), served on
// the admin listener at /, driving the admin API from the browser.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Handler serves the dashboard's assets: index.html at its root; the admin
// API mounts it at / and, for the other files, at /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	return http.FileServerFS(sub)
}
