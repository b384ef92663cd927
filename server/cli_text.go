package server

import (
	"io"

	"github.com/vigil-project/vigil/server/adminapi"
)

// row writes one line of a table: the cells, each made printable, separated
// by tabs (the tabwriter's columns).
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, adminapi.Printable(c))
	}
	io.WriteString(w, "\n")
}
