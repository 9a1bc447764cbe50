package azurite

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestEntitySize(t *testing.T) {
	body := `{"PartitionKey":"pk","RowKey":"rk","Timestamp":"2020-01-01T00:00:00Z","odata.etag":"x",
		"S":"abc","I":1,"L":"5","L@odata.type":"Edm.Int64","B":true,
		"D":"2020-01-01T00:00:00Z","D@odata.type":"Edm.DateTime",
		"G":"c9da6455-213d-42c9-9a79-3e9149a57833","G@odata.type":"Edm.Guid",
		"X":"AQID","X@odata.type":"Edm.Binary","F":1.5,"N":null,"E":"é😀"}`
	// 4 + 2*2 + 2*2 keys; S 8+2+4+6; I 8+2+4; L 8+2+8; B 8+2+1; D 8+2+8;
	// G 8+2+16; X 8+2+4+3; F 8+2+8; N nothing; E 8+2+4+2*3.
	want := 12 + 20 + 14 + 18 + 11 + 18 + 26 + 17 + 18 + 20
	got, err := EntitySize([]byte(body))
	if err != nil || got != want {
		t.Fatalf("EntitySize = %d, %v; want %d", got, err, want)
	}
}

// bigEntity returns an entity whose Azure size is 1 MiB - 2 + 2*extra.
func bigEntity(extra int) []byte {
	var b strings.Builder
	b.WriteString(`{"PartitionKey":"p","RowKey":"r"`)
	for i := range 16 { // 16 * (8 + 2*4 + 4 + 2*32000) = 1,024,320
		fmt.Fprintf(&b, `,"P%03d":"%s"`, i, strings.Repeat("x", 32000))
	}
	// 8 + 2 + 4 + 2*n; base 8; total 1,024,342 + 2n; n = 12116 -> 1 MiB - 2
	fmt.Fprintf(&b, `,"Q":"%s"}`, strings.Repeat("y", 12116+extra))
	return []byte(b.String())
}

func TestValidateEntityLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		code string // "" = accepted
	}{
		{"1 MiB exactly", string(bigEntity(1)), ""},
		{"1 MiB + 2", string(bigEntity(2)), CodeEntityTooLarge},
		{"DateTime 1601-01-01", `{"D":"1601-01-01T00:00:00Z","D@odata.type":"Edm.DateTime"}`, ""},
		{"DateTime 1601 with 7 digits", `{"D":"1601-01-01T00:00:00.0000000Z","D@odata.type":"Edm.DateTime"}`, ""},
		{"DateTime just before 1601", `{"D":"1600-12-31T23:59:59.9999999Z","D@odata.type":"Edm.DateTime"}`, CodeOutOfRangeInput},
		{"DateTime offset before 1601", `{"D":"1601-01-01T00:30:00+01:00","D@odata.type":"Edm.DateTime"}`, CodeOutOfRangeInput},
		{"DateTime year 0", `{"D":"0000-01-01T00:00:00Z","D@odata.type":"Edm.DateTime"}`, CodeOutOfRangeInput},
		{"DateTime negative year", `{"D":"-0001-01-01T00:00:00Z","D@odata.type":"Edm.DateTime"}`, CodeOutOfRangeInput},
		{"annotation before value", `{"D@odata.type":"Edm.DateTime","D":"1500-01-01T00:00:00Z"}`, CodeOutOfRangeInput},
		{"string 1500 is not a date", `{"D":"1500-01-01T00:00:00Z"}`, ""},
		{"32768 chars", `{"S":"` + strings.Repeat("a", 32768) + `"}`, ""},
		{"32769 chars", `{"S":"` + strings.Repeat("a", 32769) + `"}`, CodePropertyValueTooLarge},
		{"32768 units of surrogate pairs", `{"S":"` + strings.Repeat("😀", 16384) + `"}`, ""},
		{"32770 units of surrogate pairs", `{"S":"` + strings.Repeat("😀", 16385) + `"}`, CodePropertyValueTooLarge},
		{"escaped chars count once", `{"S":"` + strings.Repeat(`\u00e9`, 32768) + `"}`, ""},
		{"binary 64 KiB", `{"B":"` + strings.Repeat("AAAA", 65536/3) + `AA==","B@odata.type":"Edm.Binary"}`, ""},
		{"binary 64 KiB + 1", `{"B":"` + strings.Repeat("AAAA", 65536/3+1) + `","B@odata.type":"Edm.Binary"}`, CodePropertyValueTooLarge},
		{"252 properties", props252(252), ""},
		{"253 properties", props252(253), CodeTooManyProperties},
		{"nulls do not count", props252(252)[:len(props252(252))-1] + `,"Z":null}`, ""},
		{"system properties do not count", `{"PartitionKey":"a","RowKey":"b","Timestamp":"2020-01-01T00:00:00Z",` + props252(252)[1:], ""},
		{"name 255", `{"` + strings.Repeat("a", 255) + `":1}`, ""},
		{"name 256", `{"` + strings.Repeat("a", 256) + `":1}`, CodePropertyNameTooLong},
		{"duplicate", `{"A":1,"A":2}`, CodeDuplicatePropertiesSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateEntity([]byte(tc.body))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var rej *Rejection
			if !errors.As(err, &rej) || rej.Code != tc.code || rej.Status != 400 || rej.Index != -1 {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func props252(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"P%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

func TestValidPropertyName(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "_": true, "_x1": true, "Msg": true, "café": true, "名前": true, "ǅx": true,
		"a\u0301": true, // combining mark after the first letter
		"x_y_9":   true,
		"":        false, "1a": false, "a.b": false, "a-b": false, "a b": false, "a$": false,
		"@odata": false, "\u0301a": false, "a\x00": false, "😀": false, "٣x": false,
	} {
		if got := validPropertyName(name); got != ok {
			t.Errorf("validPropertyName(%q) = %v, want %v", name, got, ok)
		}
	}
}

func TestValidateEntityNotJSON(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"a":`, `{"a":1} x`, `"s"`} {
		err := ValidateEntity([]byte(body))
		var rej *Rejection
		if err == nil || errors.As(err, &rej) {
			t.Errorf("ValidateEntity(%q) = %v, want a plain error", body, err)
		}
	}
}

func TestParseBatch(t *testing.T) {
	body := strings.ReplaceAll(`--batch_1
Content-Type: multipart/mixed; boundary=changeset_1

--changeset_1
Content-Type: application/http
Content-Transfer-Encoding: binary

POST http://h/acct/tbl HTTP/1.1
Content-Type: application/json

{"PartitionKey":"p","RowKey":"a","X":1}
--changeset_1
Content-Type: application/http
Content-Transfer-Encoding: binary

POST http://h/acct/tbl(PartitionKey='p',RowKey='it''s') HTTP/1.1
X-HTTP-Method: MERGE

{"X":2}
--changeset_1
Content-Type: application/http
Content-Transfer-Encoding: binary

DELETE http://h/acct/tbl(PartitionKey='p',RowKey='c%20d') HTTP/1.1
If-Match: *


--changeset_1--
--batch_1--
`, "\n", "\r\n")
	ops, err := ParseBatch("multipart/mixed; boundary=batch_1", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ method, pk, rk, body string }{
		{"POST", "p", "a", `{"PartitionKey":"p","RowKey":"a","X":1}`},
		{"MERGE", "p", "it's", `{"X":2}`},
		{"DELETE", "p", "c d", ``},
	}
	if len(ops) != len(want) {
		t.Fatalf("got %d operations", len(ops))
	}
	for i, w := range want {
		o := ops[i]
		if o.Method != w.method || o.PartitionKey != w.pk || o.RowKey != w.rk || strings.TrimSpace(string(o.Body)) != w.body {
			t.Errorf("op %d = %s %q %q %q, want %+v", i, o.Method, o.PartitionKey, o.RowKey, o.Body, w)
		}
	}
	if _, err := ParseBatch("application/json", []byte(body)); err == nil {
		t.Error("ParseBatch accepted a non-multipart Content-Type")
	}
}

func TestEscapeNonASCII(t *testing.T) {
	body := []byte(`{"S":"` + strings.Repeat("aé中😀", 5000) + `"}`)
	out := escapeNonASCII("POST", body)
	for _, c := range out {
		if c >= 0x80 {
			t.Fatal("non-ASCII byte left")
		}
	}
	if !strings.HasPrefix(string(out), `{"S":"a\u00e9\u4e2d\ud83d\ude00a`) {
		t.Fatalf("got %.40s", out)
	}
	small := []byte(`{"S":"é"}`)
	if got := escapeNonASCII("POST", small); string(got) != string(small) {
		t.Error("small body changed")
	}
}
