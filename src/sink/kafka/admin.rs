//! Topic administration: create the service's topics and wait until they are led.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;

use super::producer::METADATA_RETRY;
use super::{EventProducer, ProduceError, TopicStatus};

impl EventProducer {
    /// Creates the `topics` that do not exist with `partitions` partitions each (and
    /// `replication` replicas), then waits until every topic has exactly `partitions`
    /// partitions with a leader. A topic that already exists with another partition count is
    /// an error: the input topics must be co-partitioned.
    pub fn ensure_topics(
        &self,
        topics: &[&str],
        partitions: u32,
        replication: u32,
        timeout: Duration,
    ) -> Result<Vec<TopicStatus>, ProduceError> {
        self.ensure_topics_with(topics, partitions, replication, &[], timeout)
    }

    /// [`EventProducer::ensure_topics`], creating missing topics with the topic-level
    /// `configs` (e.g. `cleanup.policy=compact`).
    pub fn ensure_topics_with(
        &self,
        topics: &[&str],
        partitions: u32,
        replication: u32,
        configs: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Vec<TopicStatus>, ProduceError> {
        let started = Instant::now();
        // Topics that all exist already need no admin request (librdkafka's in-process mock
        // cluster has no admin API at all).
        if topics
            .iter()
            .all(|t| self.existing_partitions(t) == Some(partitions as usize))
        {
            return Ok(topics
                .iter()
                .map(|t| TopicStatus {
                    name: (*t).to_owned(),
                    created: false,
                })
                .collect());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .settings
            .admin_config()
            .create()
            .map_err(ProduceError::Config)?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                configs.iter().fold(
                    NewTopic::new(
                        t,
                        partitions.try_into().unwrap_or(i32::MAX),
                        TopicReplication::Fixed(replication.try_into().unwrap_or(i32::MAX)),
                    ),
                    |n, (k, v)| n.set(k, v),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let results =
            futures_executor::block_on(admin.create_topics(&new, &opts)).map_err(|error| {
                ProduceError::Admin {
                    error,
                    last_broker_error: self.last_broker_error(),
                }
            })?;
        let mut status = Vec::with_capacity(topics.len());
        for r in results {
            match r {
                Ok(name) => status.push(TopicStatus {
                    name,
                    created: true,
                }),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => status.push(TopicStatus {
                    name,
                    created: false,
                }),
                Err((topic, code)) => return Err(ProduceError::CreateTopic { topic, code }),
            }
        }
        for topic in topics {
            let remaining = timeout.saturating_sub(started.elapsed());
            self.await_topic(topic, partitions as usize, remaining)?;
        }
        Ok(status)
    }

    /// Partitions of `topic` if it exists with every partition led, from one metadata request.
    fn existing_partitions(&self, topic: &str) -> Option<usize> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(topic), METADATA_RETRY * 10)
            .ok()?;
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        let led = t.error().is_none()
            && !t.partitions().is_empty()
            && t.partitions()
                .iter()
                .all(|p| p.leader() >= 0 && p.error().is_none());
        led.then(|| t.partitions().len())
    }

    /// Waits until `topic` is in the metadata with `partitions` partitions, all led.
    fn await_topic(
        &self,
        topic: &str,
        partitions: usize,
        timeout: Duration,
    ) -> Result<(), ProduceError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let detail = match self
                .producer
                .client()
                .fetch_metadata(Some(topic), remaining.max(METADATA_RETRY))
            {
                Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                    Some(t) if t.error().is_some() => {
                        format!("metadata error {:?}", t.error())
                    }
                    Some(t) if t.partitions().len() != partitions && !t.partitions().is_empty() => {
                        return Err(ProduceError::PartitionCount {
                            topic: topic.to_owned(),
                            actual: t.partitions().len(),
                            expected: partitions,
                        });
                    }
                    Some(t)
                        if !t.partitions().is_empty()
                            && t.partitions()
                                .iter()
                                .all(|p| p.leader() >= 0 && p.error().is_none()) =>
                    {
                        return Ok(());
                    }
                    Some(_) => "partitions without a leader".to_owned(),
                    None => "not in metadata".to_owned(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ProduceError::TopicUnavailable {
                    topic: topic.to_owned(),
                    waited: timeout,
                    detail,
                });
            }
            std::thread::sleep(
                METADATA_RETRY.min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
}
