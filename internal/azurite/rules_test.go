package azurite

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// props builds n string properties named P0, P1, ... of value v.
func props(n int, v string) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("P%d", i)] = v
	}
	return m
}

// entityRules are the entity rules Azurite does not enforce: each bad entity
// is stored by raw Azurite and rejected by the proxy.
var entityRules = []struct {
	name  string
	code  string
	props map[string]any
}{
	{"253 properties", CodeTooManyProperties, props(253, "x")},
	{"name with dot", CodePropertyNameInvalid, map[string]any{"http.method": "GET"}},
	{"name with dash", CodePropertyNameInvalid, map[string]any{"user-id": "u"}},
	{"name starting with digit", CodePropertyNameInvalid, map[string]any{"1st": "u"}},
	{"name with space", CodePropertyNameInvalid, map[string]any{"a b": "u"}},
	{"256-char name", CodePropertyNameTooLong, map[string]any{strings.Repeat("n", 256): "u"}},
	{"DateTime 1600-12-31", CodeOutOfRangeInput, map[string]any{"D": "1600-12-31T23:59:59.9999999Z", "D@odata.type": "Edm.DateTime"}},
	{"DateTime 0001-01-01", CodeOutOfRangeInput, map[string]any{"D": "0001-01-01T00:00:00Z", "D@odata.type": "Edm.DateTime"}},
	// 33 strings of 16,000 chars: 33*(8+2*3+4+32000) = 1,056,594 bytes in
	// Azure's accounting, 530 KB of JSON.
	{"entity over 1 MiB", CodeEntityTooLarge, props(33, strings.Repeat("s", 16000))},
}

func TestStrictRulesSingle(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	for i, rule := range entityRules {
		t.Run(rule.name, func(t *testing.T) {
			rk := fmt.Sprint("single", i)
			body := ent(t, "p", rk, rule.props)
			if ValidateEntity(body) == nil {
				t.Errorf("ValidateEntity accepted it")
			}
			_, err := proxied.AddEntity(c, body, nil)
			wantRejected(t, err, http.StatusBadRequest, rule.code)
			_, err = proxied.UpsertEntity(c, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
			wantRejected(t, err, http.StatusBadRequest, rule.code)
			_, err = proxied.UpsertEntity(c, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeMerge})
			wantRejected(t, err, http.StatusBadRequest, rule.code)
			if env.Real {
				return // proxied is the real account: the checks above calibrated the rule
			}
			if _, err := direct.AddEntity(c, body, nil); err != nil {
				t.Fatalf("raw Azurite rejected it (the rule is no longer needed?): %v", err)
			}
			_, err = proxied.UpdateEntity(c, body, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge})
			wantRejected(t, err, http.StatusBadRequest, rule.code)
		})
	}
}

func TestStrictRulesBatch(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	for i, rule := range entityRules {
		t.Run(rule.name, func(t *testing.T) {
			pk := fmt.Sprint("batch", i)
			for _, typ := range []aztables.TransactionType{aztables.TransactionTypeAdd, aztables.TransactionTypeInsertReplace, aztables.TransactionTypeInsertMerge} {
				actions := []aztables.TransactionAction{
					{ActionType: typ, Entity: ent(t, pk, "ok", nil)},
					{ActionType: typ, Entity: ent(t, pk, "bad", rule.props)},
				}
				_, err := proxied.SubmitTransaction(c, actions, nil)
				wantBatchRejected(t, err, 1, rule.code)
			}
			wantAbsent(t, direct, pk, "ok")
			if env.Real {
				return
			}
			actions := []aztables.TransactionAction{
				{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, pk, "ok", nil)},
				{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, pk, "bad", rule.props)},
			}
			if _, err := direct.SubmitTransaction(c, actions, nil); err != nil {
				t.Fatalf("raw Azurite rejected the batch: %v", err)
			}
		})
	}
}

func TestStrictBatchTooManyOperations(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	batch := func(pk string, n int) []aztables.TransactionAction {
		var a []aztables.TransactionAction
		for i := range n {
			a = append(a, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, pk, fmt.Sprintf("%03d", i), nil)})
		}
		return a
	}
	if _, err := proxied.SubmitTransaction(c, batch("hundred", 100), nil); err != nil {
		t.Fatalf("100 operations: %v", err)
	}
	_, err := proxied.SubmitTransaction(c, batch("p", 101), nil)
	wantBatchRejected(t, err, 0, CodeInvalidInput)
	wantAbsent(t, direct, "p", "000")
	if env.Real {
		return
	}

	// Raw Azurite refuses too, but with a multipart response so malformed
	// that the SDK reports no status or code.
	_, err = direct.SubmitTransaction(c, batch("p", 101), nil)
	var re *azcore.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("raw Azurite: want an unparseable response, got %v", err)
	}
	wantAbsent(t, direct, "p", "000")
}

func TestStrictBatchSeveralPartitions(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	actions := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "a", "1", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "a", "2", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "b", "3", nil)},
	}
	_, err := proxied.SubmitTransaction(c, actions, nil)
	wantBatchRejected(t, err, 2, CodeDifferentPartitions)
	wantAbsent(t, direct, "a", "1")
	if env.Real {
		return
	}
	if _, err := direct.SubmitTransaction(c, actions, nil); err != nil {
		t.Fatalf("raw Azurite rejected it: %v", err)
	}
	// A delete on another partition counts too.
	actions = []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "c", "1", nil)},
		{ActionType: aztables.TransactionTypeDelete, Entity: ent(t, "a", "1", nil)},
	}
	_, err = proxied.SubmitTransaction(c, actions, nil)
	wantBatchRejected(t, err, 1, CodeDifferentPartitions)
}

func TestStrictBatchDuplicateRow(t *testing.T) {
	t.Parallel()
	env := Get(t)
	proxied := env.NewTable(t)
	actions := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "a", "1", nil)},
		{ActionType: aztables.TransactionTypeInsertMerge, Entity: ent(t, "a", "1", nil)},
	}
	_, err := proxied.SubmitTransaction(ctx(t), actions, nil)
	wantBatchRejected(t, err, 1, CodeInvalidDuplicateRow)
}

func TestStrictBatchPayloadTooLarge(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	direct, proxied := env.DirectTable(t, name), env.Table(t, name)
	c := ctx(t)
	// 80 entities of 60,000 characters: ~4.8 MB of payload, each entity
	// only 120 KB in Azure's accounting.
	var actions []aztables.TransactionAction
	for i := range 80 {
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd,
			Entity: ent(t, "p", fmt.Sprint(i), map[string]any{"A": strings.Repeat("a", 30000), "B": strings.Repeat("b", 30000)})})
	}
	_, err := proxied.SubmitTransaction(c, actions, nil)
	re := responseError(t, err)
	if re.StatusCode != http.StatusRequestEntityTooLarge || re.ErrorCode != CodeRequestBodyTooLarge {
		t.Fatalf("got %d %s, want 413 %s", re.StatusCode, re.ErrorCode, CodeRequestBodyTooLarge)
	}
	wantAbsent(t, direct, "p", "0")
	// Azurite enforces this limit too, the same way.
	_, err = direct.SubmitTransaction(c, actions, nil)
	if re := responseError(t, err); re.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("raw Azurite: got %v", err)
	}
	if got := env.Proxy.Stats().Rejected[CodeRequestBodyTooLarge]; got == 0 && !env.Real {
		t.Errorf("Stats().Rejected[%s] = 0", CodeRequestBodyTooLarge)
	}
}

// TestStrictAccepts checks the proxy does not reject entities at the limits.
func TestStrictAccepts(t *testing.T) {
	t.Parallel()
	env := Get(t)
	tbl := env.NewTable(t)
	c := ctx(t)
	max := map[string]any{}
	for i := range 252 {
		max[fmt.Sprintf("P%d", i)] = "x"
	}
	cases := map[string]map[string]any{
		"252 properties":       max,
		"255-char name":        {strings.Repeat("n", 255): "x"},
		"underscore names":     {"_": 1, "_a_1": 2, "A9": 3},
		"unicode letter names": {"café": 1, "名前": 2},
		"DateTime 1601-01-01":  {"D": "1601-01-01T00:00:00Z", "D@odata.type": "Edm.DateTime"},
		"DateTime 9999":        {"D": "9999-12-31T23:59:59.9999999Z", "D@odata.type": "Edm.DateTime"},
		"32768-char string":    {"S": strings.Repeat("a", 32768)},
		"64 KiB binary":        {"B": base64.StdEncoding.EncodeToString(make([]byte, 64<<10)), "B@odata.type": "Edm.Binary"},
		"null property":        {"N": nil},
		// 31 strings of 16,000 chars: 992,438 bytes.
		"entity just under 1 MiB": props(31, strings.Repeat("s", 16000)),
	}
	i := 0
	for name, p := range cases {
		i++
		body := ent(t, "p", fmt.Sprint(i), p)
		if err := ValidateEntity(body); err != nil {
			t.Errorf("%s: ValidateEntity: %v", name, err)
		}
		if _, err := tbl.AddEntity(c, body, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func wantRejected(t *testing.T, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("proxy accepted it, want %d %s", status, code)
	}
	re := responseError(t, err)
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
	if !strings.Contains(err.Error(), `"odata.error"`) {
		t.Errorf("error body is not an OData error: %v", err)
	}
}

// wantBatchRejected checks the SDK's error for a batch Azure refused: a 202
// whose body carries the operation index and the code.
func wantBatchRejected(t *testing.T, err error, index int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("proxy accepted the batch, want %s", code)
	}
	re := responseError(t, err)
	msg := err.Error()
	if re.StatusCode != http.StatusAccepted || !strings.Contains(msg, `"code":"`+code+`"`) || !strings.Contains(msg, fmt.Sprintf(`"value":"%d:`, index)) {
		t.Fatalf("want 202 with %s at index %d, got %v", code, index, err)
	}
}

func wantAbsent(t *testing.T, c *aztables.Client, pk, rk string) {
	t.Helper()
	_, err := c.GetEntity(ctx(t), pk, rk, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Fatalf("entity %s/%s: want 404, got %v", pk, rk, err)
	}
}

func countEntities(t testing.TB, c *aztables.Client, pk string) int {
	t.Helper()
	filter := fmt.Sprintf("PartitionKey eq '%s'", pk)
	pager := c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entities)
	}
	return n
}
