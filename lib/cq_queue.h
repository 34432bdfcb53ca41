/* cq_queue.h - the queue verbs of libcq (qctl).  Included by cq.h. */
#ifndef CQ_QUEUE_H
#define CQ_QUEUE_H

#endif
