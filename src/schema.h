/* The PostgreSQL schema: lib-compute-platform's tables and our own
 * migrations on top (store_migrate in store.h says which). */
#ifndef ACP_SCHEMA_H
#define ACP_SCHEMA_H

#include "pgpool.h"

/* Brings the database to the current schema: store_migrate's work. */
int schema_migrate(pgpool *pool);

#endif
