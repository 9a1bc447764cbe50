package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/query"
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"logs", "record", "audit"}

func parseTemplates() (*template.Template, error) {
	root := template.New("root").Funcs(template.FuncMap{
		"fmtFloat": func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	})
	for _, name := range pageNames {
		layout, err := assets.ReadFile("assets/layout.html")
		if err != nil {
			return nil, err
		}
		body, err := assets.ReadFile("assets/" + name + ".html")
		if err != nil {
			return nil, err
		}
		t := root.New(name)
		// Each page defines "content"; a page's set is layout + page, so
		// the names are made unique per page.
		src := strings.ReplaceAll(string(layout), `{{template "content" .}}`, `{{template "content-`+name+`" .}}`)
		src += strings.ReplaceAll(string(body), `{{define "content"}}`, `{{define "content-`+name+`"}}`)
		if _, err := t.Parse(src); err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
	}
	return root, nil
}

// render executes page template name into a buffer, then writes it (a
// template error is a 500, never half a page).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		s.logError(r, err)
		plain(w, http.StatusInternalServerError, "500 internal error: the page could not be rendered")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail renders the page with the error of a request to the table service.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, data any, p *page, err error) {
	if r.Context().Err() != nil {
		return // the browser went away
	}
	s.logError(r, err)
	p.Error = s.errorText(err)
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, query.ErrInvalidQuery):
		code = http.StatusBadRequest
	case errors.Is(err, query.ErrTableNotFound):
		code = http.StatusNotFound
	}
	name := p.Nav
	if _, ok := data.(*recordPage); ok {
		name = "record"
	}
	s.render(w, r, code, name, data)
}

// levelOf converts a severity to a query MinLevel.
func levelOf(sev int) slog.Level { return slog.Level(sev) }

// fieldNode is one field of the detail view: a value, or a group with
// children.
type fieldNode struct {
	Key      string
	Type     string // string, int, float, bool, time, bytes, json, null, group
	Text     string
	Children []fieldNode
}

// fieldTree turns fields into nodes sorted by key, groups nested.
func fieldTree(fields map[string]any) []fieldNode {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]fieldNode, 0, len(keys))
	for _, k := range keys {
		v := fields[k]
		if m, ok := v.(map[string]any); ok {
			out = append(out, fieldNode{Key: k, Type: "group", Children: fieldTree(m)})
			continue
		}
		out = append(out, fieldNode{Key: k, Type: typeOf(v), Text: fieldtext.Value(v)})
	}
	return out
}

// typeOf names the type of a field value.
func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case int64, int32, int, uint64:
		return "int"
	case float64, float32:
		return "float"
	case time.Time:
		return "time"
	case []byte:
		return "bytes"
	}
	return "json"
}

// fieldSummary is the one-line form of fields for the list: key=value,
// sorted, groups as group.key.
func fieldSummary(fields map[string]any) string {
	var b strings.Builder
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if b.Len() > 4*maxListFields {
				return
			}
			if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
				walk(prefix+k+".", sub)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(prefix + k)
			b.WriteByte('=')
			t := fieldtext.Value(m[k])
			if t == "" || strings.ContainsAny(t, " \"=") {
				t = strconv.Quote(t)
			}
			b.WriteString(t)
		}
	}
	walk("", fields)
	return b.String()
}
