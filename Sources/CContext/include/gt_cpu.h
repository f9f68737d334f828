#ifndef GT_CPU_H
#define GT_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/// The CPU the calling thread is running on at this instant (it may move
/// right after), or -1 when the kernel cannot say.
int gt_current_cpu(void);

#ifdef __cplusplus
}
#endif

#endif
