/*
 * buffer.h — growable byte buffers the host owns (persistor_buffer).
 *
 * Also the host table's buffer_set/buffer_append slots.  A zeroed
 * persistor_buffer is an empty buffer; buffer_free releases it.
 */
#ifndef PERSISTOR_CORE_BUFFER_H
#define PERSISTOR_CORE_BUFFER_H

#include "persistor/adapter.h"

int32_t buffer_set(persistor_buffer *buf, const void *data, uint32_t len);
int32_t buffer_append(persistor_buffer *buf, const void *data, uint32_t len);
/* Make room for `extra` more bytes; OK or E_NOMEM. */
int32_t buffer_reserve(persistor_buffer *buf, uint32_t extra);
void buffer_reset(persistor_buffer *buf); /* len = 0, memory kept */
void buffer_free(persistor_buffer *buf);  /* back to zeroed */

#endif
