/*
 * launch.h - how every operation puts work on a queue: kernel arguments as a list, one launch
 * (set the arguments and enqueue, under the program's lock), and the chain of commands of one
 * public call (each waits for the previous one; the first waits for the caller's wait list; the
 * last one's event goes to the caller).
 */
#ifndef ASP_LAUNCH_H
#define ASP_LAUNCH_H

#include "internal.h"

/* One kernel argument: (size, pointer); a NULL pointer with a size is local memory. */
typedef struct asp_arg {
  size_t size;
  const void *value;
} asp_arg;
#define ASP_ARG(v) ((asp_arg){sizeof(v), &(v)})
#define ASP_LOCAL(bytes) ((asp_arg){(bytes), NULL})

/* The queue of a call: the caller's, or the context's when queue is NULL. */
cl_command_queue asp_queue_or_default(const adasplash_context *ctx, cl_command_queue queue);

/* The commands of one call. Out-of-order queues work too: ordering comes from the events. */
typedef struct asp_chain {
  const adasplash_context *ctx;
  cl_command_queue queue;
  cl_uint nwait;
  const cl_event *wait;
  cl_event last;
} asp_chain;

void asp_chain_init(asp_chain *c, const adasplash_context *ctx, cl_command_queue queue,
                    cl_uint nwait, const cl_event *wait);
/* Sets the arguments of kernel `name` of program and enqueues it on the chain, holding the
 * program's lock (kernel objects are not safe to configure from two threads). global sizes are in
 * work-items; local may be NULL. */
adasplash_status asp_launch(asp_chain *c, asp_program *program, const char *name,
                            const asp_arg *args, size_t nargs, cl_uint dims, const size_t *global,
                            const size_t *local);
adasplash_status asp_chain_fill(asp_chain *c, cl_mem buf, const void *pattern, size_t pattern_size,
                                size_t offset, size_t size);
/* For commands enqueued by another library (CLBlast takes no wait list): a barrier that makes the
 * queue wait for the chain so far, and the adoption of the foreign command's event as the chain's
 * last one (the chain releases it). */
adasplash_status asp_chain_barrier(asp_chain *c);
void asp_chain_adopt(asp_chain *c, cl_event ev);
/* Ends a call: when st is success, hands the last event to *event (if non-NULL) or releases it
 * (with no command enqueued, a marker stands in so the caller still gets an event that completes
 * after its wait list); otherwise releases the last event and returns st. */
adasplash_status asp_chain_end(asp_chain *c, adasplash_status st, cl_event *event);

#endif /* ASP_LAUNCH_H */
