#ifndef DROVER_CLIBPQ_SHIM_H
#define DROVER_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <postgres_ext.h>

/* Swift cannot import character-literal macros; re-export the error fields we read. */
static const int DroverPGDiagSQLState = PG_DIAG_SQLSTATE;
static const int DroverPGDiagMessagePrimary = PG_DIAG_MESSAGE_PRIMARY;
static const int DroverPGDiagMessageDetail = PG_DIAG_MESSAGE_DETAIL;
static const int DroverPGDiagMessageHint = PG_DIAG_MESSAGE_HINT;

#endif
