package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tablelog/tablelog/sink"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The README's zap snippet, run against an in-memory table. Between the
// "README zap" markers the code is the README's, line for line
// (TestReadmeSnippets checks it).
func Example_zap() {
	logs, ctx := &memTable{}, context.Background()
	// README zap
	s, err := sink.New(logs, sink.Options{Service: "checkout"}) // logs: a *tablelog.Client
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx) // drains; its error says how many records were not stored

	logger := zap.New(s.Core(zapcore.InfoLevel))
	logger.Info("order placed", zap.Int("order", 1042), zap.String("user_id", "u-7"))
	// end README
	if err := s.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	printLogEntities(logs)
	// Output:
	// info order placed order=1042 user_id=u-7
}

// The README's slog snippet, run against an in-memory table.
func Example_slog() {
	logs, ctx := &memTable{}, context.Background()
	defer slog.SetDefault(slog.Default()) // the snippet replaces the default logger
	// README slog
	s, err := sink.New(logs, sink.Options{Service: "checkout"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	slog.SetDefault(slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelInfo})))
	slog.Info("order placed", "order", 1042, "user_id", "u-7")
	// end README
	if err := s.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	printLogEntities(logs)
	// Output:
	// info order placed order=1042 user_id=u-7
}

// printLogEntities prints the log entities of table (not the catalog's).
func printLogEntities(table *memTable) {
	table.mu.Lock()
	defer table.mu.Unlock()
	for _, raw := range table.entities {
		var e map[string]any
		_ = json.Unmarshal(raw, &e)
		if e["PartitionKey"] == "~catalog" {
			continue
		}
		fmt.Printf("%v %v order=%v user_id=%v\n", e["Level"], e["Msg"], e["order"], e["user_id"])
	}
}

// TestReadmeSnippets keeps the README's first-screen snippets true: each
// is the code between the markers of the matching example above.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zap", "slog"} {
		block := regexp.MustCompile("(?s)### (?:log/)?" + name + "\n\n```go\n(.*?)```").FindSubmatch(readme)
		if block == nil {
			t.Fatalf("README has no ### %s snippet", name)
		}
		marked := regexp.MustCompile("(?s)// README " + name + "\n(.*?)\t// end README").FindSubmatch(src)
		if marked == nil {
			t.Fatalf("no README %s markers in the example", name)
		}
		if got, want := normalize(string(block[1])), normalize(string(marked[1])); got != want {
			t.Errorf("README's %s snippet differs from Example_%s:\nREADME:\n%s\nexample:\n%s", name, name, got, want)
		}
	}
}

func normalize(code string) string {
	var out []string
	for _, l := range strings.Split(code, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
