package sink

import (
	"fmt"

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
// answer counts as success.

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
		if e := s.insertOne(entity, s.keepDenied()); e != nil {
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
