// SPDX-License-Identifier: GPL-2.0
/*
 * myevent_source: a demo "health monitor" for mykthread's event queue.
 *
 * The kernel patch "init: wake mykthread through its wait queue ..." adds
 * myevent_notify(id) (<linux/myevent.h>): kernel code that finds a data
 * structure in trouble calls it, and mykthread runs the program named by
 * /proc/sys/kernel/myevent_handler with TROUBLED_DS=<id>.  This module plays
 * that kernel code.  Loading it creates /proc/myevent_source; writing a
 * request there makes a timer callback, that is atomic (softirq) context
 * as in a driver's watchdog or interrupt handler, call myevent_notify():
 *
 *   echo 42 > /proc/myevent_source               one event, id 42
 *   echo "burst 100 5000" > /proc/myevent_source  100 events, ids 5000 to
 *                                                5099, from one callback
 *
 * A last number delays the callback by that many milliseconds (default 0:
 * the next timer tick), e.g. "burst 100 5000 2000".  One request at a time:
 * a write while one is pending fails with EBUSY.  A burst has at most
 * MYEVENT_SOURCE_MAX_BURST events.  Reading the file shows
 *
 *   sent <n>       events passed to myevent_notify()
 *   dropped <n>    of those, dropped by the kernel: its queue was full
 *   pending <n>    events of a request whose timer has not fired yet
 *
 * Unloading the module cancels a pending request (del_timer_sync() also
 * waits for a callback that is running).  Events the kernel has already
 * queued are plain ids, not pointers into this module: mykthread still
 * reports them after the module is gone.
 *
 * Builds against linux-4.0 and linux 6.1 patched with the mykthread series.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/errno.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/myevent.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#define MYEVENT_SOURCE_MAX_BURST	1000
#define MYEVENT_SOURCE_MAX_DELAY_MS	60000

static DEFINE_SPINLOCK(source_lock);
static struct timer_list source_timer;
/* The request the timer will send, under source_lock: count == 0 is none. */
static unsigned int request_first, request_count;
/* What was sent, under source_lock. */
static unsigned long sent, dropped;

static void source_send(void)
{
	unsigned int first, count, i, refused = 0;
	unsigned long flags;

	spin_lock_irqsave(&source_lock, flags);
	first = request_first;
	count = request_count;
	request_count = 0;
	spin_unlock_irqrestore(&source_lock, flags);

	/* Atomic context: myevent_notify() must not sleep. */
	for (i = 0; i < count; i++)
		if (myevent_notify(first + i))
			refused++;

	spin_lock_irqsave(&source_lock, flags);
	sent += count;
	dropped += refused;
	spin_unlock_irqrestore(&source_lock, flags);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(4, 15, 0)
static void source_timer_fn(struct timer_list *unused)
{
	source_send();
}
#else
static void source_timer_fn(unsigned long unused)
{
	source_send();
}
#endif

/* "ID [DELAY_MS]" or "burst N FIRST [DELAY_MS]". */
static int source_parse(char *text, unsigned int *first, unsigned int *count,
			unsigned int *delay_ms)
{
	unsigned int values[3];
	char *token, *rest = strim(text);
	int burst = 0, n = 0, ret;

	if (!strncmp(rest, "burst", 5) && (!rest[5] || isspace(rest[5]))) {
		burst = 1;
		rest += 5;
	}
	while ((token = strsep(&rest, " \t\n")) != NULL) {
		if (!*token)
			continue;
		if (n == ARRAY_SIZE(values))
			return -EINVAL;
		ret = kstrtouint(token, 10, &values[n++]);
		if (ret)
			return ret;
	}
	if (n < 1 + burst || n > 2 + burst)
		return -EINVAL;

	*count = burst ? values[0] : 1;
	*first = values[burst];
	*delay_ms = n == 2 + burst ? values[1 + burst] : 0;
	if (*count < 1 || *count > MYEVENT_SOURCE_MAX_BURST ||
	    *delay_ms > MYEVENT_SOURCE_MAX_DELAY_MS)
		return -EINVAL;
	return 0;
}

static ssize_t source_write(struct file *file, const char __user *ubuf,
			    size_t len, loff_t *ppos)
{
	unsigned int first, count, delay_ms;
	unsigned long flags;
	char text[64];
	int ret;

	if (len >= sizeof(text))
		return -EINVAL;
	if (copy_from_user(text, ubuf, len))
		return -EFAULT;
	text[len] = '\0';
	ret = source_parse(text, &first, &count, &delay_ms);
	if (ret)
		return ret;

	spin_lock_irqsave(&source_lock, flags);
	if (request_count) {
		ret = -EBUSY;
	} else {
		request_first = first;
		request_count = count;
		mod_timer(&source_timer, jiffies + msecs_to_jiffies(delay_ms));
	}
	spin_unlock_irqrestore(&source_lock, flags);
	return ret ? ret : len;
}

static int source_show(struct seq_file *m, void *v)
{
	unsigned long flags, s, d;
	unsigned int pending;

	spin_lock_irqsave(&source_lock, flags);
	s = sent;
	d = dropped;
	pending = request_count;
	spin_unlock_irqrestore(&source_lock, flags);

	seq_printf(m, "sent %lu\ndropped %lu\npending %u\n", s, d, pending);
	return 0;
}

static int source_open(struct inode *inode, struct file *file)
{
	return single_open(file, source_show, NULL);
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
static const struct proc_ops source_fops = {
	.proc_open	= source_open,
	.proc_read	= seq_read,
	.proc_write	= source_write,
	.proc_lseek	= seq_lseek,
	.proc_release	= single_release,
};
#else
static const struct file_operations source_fops = {
	.owner		= THIS_MODULE,
	.open		= source_open,
	.read		= seq_read,
	.write		= source_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};
#endif

static int __init source_init(void)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(4, 15, 0)
	timer_setup(&source_timer, source_timer_fn, 0);
#else
	setup_timer(&source_timer, source_timer_fn, 0);
#endif
	if (!proc_create("myevent_source", 0644, NULL, &source_fops)) {
		pr_err("cannot create /proc/myevent_source\n");
		return -ENOMEM;
	}
	return 0;
}

static void __exit source_exit(void)
{
	unsigned int cancelled = 0;

	/* No writer can arm the timer any more: remove_proc_entry() waits for them. */
	remove_proc_entry("myevent_source", NULL);
	/* A pending request is cancelled; a running callback is waited for. */
	if (del_timer_sync(&source_timer))
		cancelled = request_count;
	if (cancelled)
		pr_info("unloaded with a request pending: %u events cancelled\n", cancelled);
}

module_init(source_init);
module_exit(source_exit);

MODULE_DESCRIPTION("myevent demo source: calls myevent_notify() from a timer");
MODULE_LICENSE("GPL");
