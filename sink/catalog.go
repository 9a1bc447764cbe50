package sink

import (
	"fmt"
	"sync"

	"github.com/tablelog/tablelog/internal/schema"
)

// The catalog. The first write of a process into a log partition
// "<service>_<yyyyMMdd>" also inserts, into the same table, the entity
//
//	PartitionKey = schema.CatalogPartition ("~catalog")
//	RowKey       = the log PartitionKey
//	Service      = the service name (Edm.String)
//	Day          = the UTC day as "yyyyMMdd" (Edm.String)
//
// (the shape the audit table's catalog shares, built by schema), so readers
// list services and days from one small partition instead of scanning the
// table. The insert is insert-only (an add-only SAS suffices); when another
// process has written the same day already, the service's "already exists"
// answer counts as success. Every transaction of the partition waits
// for that insert (ensureCatalog), so the entry is stored before the
// partition's first record, whichever worker sends it.

// catalogEntity returns the catalog entity JSON for log partition pk.
func catalogEntity(pk string) ([]byte, error) {
	service, day, _, err := schema.ParsePartitionKey(pk)
	if err != nil {
		return nil, err
	}
	return schema.AppendCatalogEntity(nil, service, day), nil
}

// writeCatalog records partition pk in the catalog, retrying transient
// failures (and, with a spool, denied ones, as for the records: a day
// stored without its catalog entity would be missing from Services and
// Days). A permanent failure is reported; the logs are written anyway.
func (s *Sink) writeCatalog(pk string) {
	entity, err := catalogEntity(pk)
	if err == nil {
		if e := s.insertOne(s.hardCtx, entity, s.keepDenied()); e != nil {
			if e.class == aborted {
				return
			}
			err = e
		}
	}
	if err != nil {
		s.opts.ErrorHandler(fmt.Errorf("sink: cannot record partition %s in the catalog: %w", pk, err))
		return
	}
	s.c.catalogWrites.Add(1)
}

// catalogSet is the partitions this process recorded in the catalog.
type catalogSet struct {
	mu   sync.Mutex
	done map[string]chan struct{} // by partition: closed once its entry is written (or given up on)
}

// maxCatalogDays bounds catalogSet.done: past it, finished entries are
// dropped (a partition dropped and written again costs one more insert,
// answered "already exists").
const maxCatalogDays = 8

// ensureCatalog records partition pk in the catalog before the caller
// stores its first record there: the first caller of the process writes
// the entry (writeCatalog), the others wait for it (or for Close to give
// up).
func (s *Sink) ensureCatalog(pk string) {
	cs := &s.catalogs
	cs.mu.Lock()
	if c, ok := cs.done[pk]; ok {
		cs.mu.Unlock()
		select {
		case <-c:
		case <-s.hardCtx.Done():
		}
		return
	}
	if cs.done == nil {
		cs.done = map[string]chan struct{}{}
	}
	if len(cs.done) >= maxCatalogDays {
		for k, c := range cs.done {
			select {
			case <-c:
				delete(cs.done, k)
			default:
			}
		}
	}
	c := make(chan struct{})
	cs.done[pk] = c
	cs.mu.Unlock()
	defer close(c)
	s.writeCatalog(pk)
}
