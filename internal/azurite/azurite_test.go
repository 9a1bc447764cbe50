package azurite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

func TestMain(m *testing.M) { Main(m) }

// needEmulator fails a test that is about Azurite or the proxy when the
// tests run against a real account (no skip: the run must say so).
func needEmulator(t *testing.T) {
	t.Helper()
	if Get(t).Real {
		t.Fatalf("this test needs the local Azurite and strict proxy; unset %s to run it", EnvConnectionString)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func ent(t testing.TB, pk, rk string, props map[string]any) []byte {
	t.Helper()
	m := map[string]any{"PartitionKey": pk, "RowKey": rk}
	for k, v := range props {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func responseError(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %T: %v", err, err)
	}
	return re
}

func TestPassThrough(t *testing.T) {
	t.Parallel()
	env := Get(t)
	tbl := env.NewTable(t)
	c := ctx(t)
	if _, err := tbl.AddEntity(c, ent(t, "p", "r1", map[string]any{"Msg": "hello"}), nil); err != nil {
		t.Fatal(err)
	}
	var actions []aztables.TransactionAction
	for i := range 10 {
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd,
			Entity: ent(t, "p", fmt.Sprintf("b%02d", i), map[string]any{"N": i})})
	}
	if _, err := tbl.SubmitTransaction(c, actions, nil); err != nil {
		t.Fatal(err)
	}
	direct := env.DirectTable(t, tableName(tbl))
	got, err := direct.GetEntity(c, "p", "b07", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", got.Value)
}

func tableName(c *aztables.Client) string { return TableName(c) }

func TestAddOnlyTable(t *testing.T) {
	t.Parallel()
	env := Get(t)
	name := TableName(env.NewTable(t))
	add := env.AddOnlyTable(t, name)
	c := ctx(t)
	if _, err := add.AddEntity(c, ent(t, "p", "single", nil), nil); err != nil {
		t.Fatalf("single insert under add-only SAS: %v", err)
	}
	actions := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "p", "b1", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "p", "b2", nil)},
	}
	if _, err := add.SubmitTransaction(c, actions, nil); err != nil {
		t.Fatalf("batch insert under add-only SAS: %v", err)
	}
	if _, err := add.GetEntity(c, "p", "b1", nil); err == nil {
		t.Error("read under add-only SAS succeeded")
	} else if re := responseError(t, err); re.StatusCode != 403 {
		t.Errorf("read: status %d, want 403", re.StatusCode)
	}
	if _, err := add.UpsertEntity(c, ent(t, "p", "b1", map[string]any{"X": 1}), nil); err == nil {
		t.Error("upsert under add-only SAS succeeded")
	}
	if _, err := add.DeleteEntity(c, "p", "b1", nil); err == nil {
		t.Error("delete under add-only SAS succeeded")
	}
	if _, err := env.AddOnlyTable(t, NewTableName()).CreateTable(c, nil); err == nil {
		t.Error("table creation under add-only SAS succeeded")
	}
	if _, err := env.DirectTable(t, name).GetEntity(c, "p", "b2", nil); err != nil {
		t.Errorf("batch-inserted entity not stored: %v", err)
	}
}
