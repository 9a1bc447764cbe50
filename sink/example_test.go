package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/sink"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A Sink behind a zap logger and an slog logger, writing to the table
// "logs" of the account in a connection string.
func Example() {
	svc, err := aztables.NewServiceClientFromConnectionString(os.Getenv("TABLELOG_CONNECTION_STRING"), nil)
	if err != nil {
		log.Fatal(err)
	}
	client := svc.NewClient("logs")
	s, err := sink.New(client, sink.Options{Service: "checkout"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			log.Print(err) // says how many records were not delivered
		}
	}()

	logger := zap.New(s.Core(zapcore.InfoLevel), zap.AddCaller())
	logger.Info("order placed", zap.String("order", "A-1001"), zap.Int("items", 3))

	slogger := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelInfo}))
	slogger.Info("payment captured", "order", "A-1001", "amount", 42.5)
}

// memTable is a Table keeping entities in memory, for the examples.
type memTable struct {
	mu       sync.Mutex
	entities [][]byte
}

func (m *memTable) SubmitTransaction(_ context.Context, actions []aztables.TransactionAction, _ *aztables.SubmitTransactionOptions) (aztables.TransactionResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range actions {
		m.entities = append(m.entities, append([]byte(nil), a.Entity...))
	}
	return aztables.TransactionResponse{}, nil
}

func (m *memTable) AddEntity(_ context.Context, e []byte, _ *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entities = append(m.entities, append([]byte(nil), e...))
	return aztables.AddEntityResponse{}, nil
}

func (m *memTable) CreateTable(context.Context, *aztables.CreateTableOptions) (aztables.CreateTableResponse, error) {
	return aztables.CreateTableResponse{}, nil
}

// Records become entities with typed columns; groups nest.
func ExampleSink_Handler() {
	table := &memTable{}
	s, err := sink.New(table, sink.Options{Service: "checkout"})
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(s.Handler(nil)).With("region", "westeurope")
	logger.Info("payment captured", "amount", 42.5, slog.Group("card", "brand", "visa"))
	logger.Warn("retrying", "attempt", 2)
	if err := s.Close(context.Background()); err != nil {
		log.Fatal(err)
	}

	var lines []string
	for _, raw := range table.entities {
		var e map[string]any
		_ = json.Unmarshal(raw, &e)
		if e["PartitionKey"] == "~catalog" {
			lines = append(lines, fmt.Sprintf("catalog: %v", e["Service"]))
			continue
		}
		delete(e, "PartitionKey")
		delete(e, "RowKey")
		delete(e, "Time")
		delete(e, "Time@odata.type")
		b, _ := json.Marshal(e) // keys sorted
		lines = append(lines, string(b))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// catalog: checkout
	// {"Level":"info","Msg":"payment captured","Severity":0,"amount":42.5,"amount@odata.type":"Edm.Double","card__brand":"visa","region":"westeurope"}
	// {"Level":"warn","Msg":"retrying","Severity":4,"attempt":"2","attempt@odata.type":"Edm.Int64","region":"westeurope"}
}

// Flush waits for what was logged before it; its error says how many
// records are not stored.
func ExampleSink_Flush() {
	s, err := sink.New(&memTable{}, sink.Options{Service: "checkout"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(context.Background())
	logger := zap.New(s.Core(zapcore.InfoLevel))
	for i := range 250 {
		logger.Info("tick", zap.Int("i", i))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		var de *sink.DeliveryError
		if errors.As(err, &de) {
			fmt.Println(de.Failed, "failed,", de.Pending, "pending")
		}
		return
	}
	st := s.Stats()
	fmt.Println(st.Enqueued, "enqueued,", st.Written, "written,", st.BufferedRecords, "buffered")
	// Output:
	// 250 enqueued, 250 written, 0 buffered
}
