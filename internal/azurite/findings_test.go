package azurite

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// TestEmulatorFindings pins the Azurite behaviours the package documentation
// reports, so an Azurite upgrade that changes one is noticed.
func TestEmulatorFindings(t *testing.T) {
	t.Parallel()
	needEmulator(t)
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	roundTrip := func(t *testing.T, rk, body string) map[string]any {
		t.Helper()
		if _, err := direct.AddEntity(c, []byte(body), nil); err != nil {
			t.Fatalf("raw Azurite rejected it: %v", err)
		}
		got, err := direct.GetEntity(c, "p", rk, nil)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(got.Value, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("control characters in strings are stored", func(t *testing.T) {
		m := roundTrip(t, "ctl", `{"PartitionKey":"p","RowKey":"ctl","S":"a\u0000b\u0001c\u001fd\u007fe\u0085f"}`)
		if want := "a\x00b\x01c\x1fd\x7fe\u0085f"; m["S"] != want {
			t.Errorf("got %q, want %q", m["S"], want)
		}
	})

	t.Run("NaN and infinities as Edm.Double are stored", func(t *testing.T) {
		m := roundTrip(t, "nan", `{"PartitionKey":"p","RowKey":"nan","F":"NaN","F@odata.type":"Edm.Double","G":"Infinity","G@odata.type":"Edm.Double","H":"-Infinity","H@odata.type":"Edm.Double"}`)
		if m["F"] != "NaN" || m["G"] != "Infinity" || m["H"] != "-Infinity" || m["F@odata.type"] != "Edm.Double" {
			t.Errorf("got %v", m)
		}
	})

	t.Run("Edm values are not checked", func(t *testing.T) {
		m := roundTrip(t, "edm", `{"PartitionKey":"p","RowKey":"edm","I":"abc","I@odata.type":"Edm.Int64"}`)
		if m["I"] != "abc" {
			t.Errorf("got %v", m)
		}
	})

	t.Run("32768 UTF-16 units pass, 32769 fail", func(t *testing.T) {
		for _, tc := range []struct {
			s  string
			ok bool
		}{
			{strings.Repeat("a", 32768), true},
			{strings.Repeat("a", 32769), false},
			{strings.Repeat("😀", 16384), true}, // 32768 units, 65536 UTF-8 bytes
			{strings.Repeat("😀", 16384) + "a", false},
			{strings.Repeat("é", 32768), true},
		} {
			// Through the proxy, which also keeps Azurite from mangling
			// multi-byte characters (see escapeNonASCII).
			rk := fmt.Sprintf("len%d-%d", len(tc.s), len([]rune(tc.s)))
			_, err := proxied.AddEntity(c, ent(t, "p", rk, map[string]any{"S": tc.s}), nil)
			if tc.ok && err != nil {
				t.Errorf("%d UTF-16 units: %v", utf16Len(tc.s), err)
			}
			if !tc.ok {
				wantRejected(t, err, http.StatusBadRequest, CodePropertyValueTooLarge)
			}
			// Azurite alone judges the same (ASCII cannot be mangled).
			if !strings.ContainsFunc(tc.s, func(r rune) bool { return r > 127 }) {
				_, err := direct.AddEntity(c, ent(t, "p", "d"+rk, map[string]any{"S": tc.s}), nil)
				if (err == nil) != tc.ok {
					t.Errorf("raw Azurite, %d chars: err = %v", len(tc.s), err)
				}
			}
		}
	})

	t.Run("proxy keeps large non-ASCII values intact", func(t *testing.T) {
		for i, ch := range []string{"é", "中", "😀"} {
			s := strings.Repeat(ch, 30000/utf16Len(ch))
			rk := fmt.Sprint("utf", i)
			if _, err := proxied.AddEntity(c, ent(t, "p", rk, map[string]any{"S": s, "T": s}), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := proxied.UpsertEntity(c, ent(t, "p", rk+"u", map[string]any{"S": s}), nil); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{rk, rk + "u"} {
				got, err := direct.GetEntity(c, "p", k, nil)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				json.Unmarshal(got.Value, &m)
				if m["S"] != s {
					t.Errorf("%q x %d via %s: value changed (%d U+FFFD)", ch, len([]rune(s)), k, strings.Count(m["S"].(string), "\uFFFD"))
				}
			}
		}
	})

	t.Run("batches keep large non-ASCII values intact", func(t *testing.T) {
		s := strings.Repeat("中😀é", 8000) // 32000 UTF-16 units
		var actions []aztables.TransactionAction
		for i := range 4 {
			actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertReplace,
				Entity: ent(t, "batchutf", fmt.Sprint(i), map[string]any{"S": s})})
		}
		for try := range 3 {
			if _, err := direct.SubmitTransaction(c, actions, nil); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				got, err := direct.GetEntity(c, "batchutf", fmt.Sprint(i), nil)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				json.Unmarshal(got.Value, &m)
				if m["S"] != s {
					t.Fatalf("try %d entity %d: value changed", try, i)
				}
			}
		}
	})

	t.Run("duplicate property names: the SDK keeps the last, ValidateEntity rejects", func(t *testing.T) {
		body := `{"PartitionKey":"p","RowKey":"dup","A":"1","A":"2"}`
		var rej *Rejection
		if err := ValidateEntity([]byte(body)); !errors.As(err, &rej) || rej.Code != CodeDuplicatePropertiesSpec {
			t.Errorf("ValidateEntity: %v", err)
		}
		// aztables re-encodes the entity through a map: the duplicate never
		// reaches the wire, the first value is silently lost.
		if m := roundTrip(t, "dup", body); m["A"] != "2" {
			t.Errorf("stored A = %v", m["A"])
		}
	})
}
