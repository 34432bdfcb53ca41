/* cq_stats.h - cache and queue figures (cqstat, the stats verbs).
 * Included by cq.h. */
#ifndef CQ_STATS_H
#define CQ_STATS_H

#endif
