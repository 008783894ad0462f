# SuperFastPython.com
# example of returning a variable from a process using a queue
from random import random
from time import sleep
from multiprocessing import Queue
from multiprocessing import Process

# function to execute in a child process
def task(queue):
    # generate some data
    data = random()
    # block, to simulate computational effort
    print(f'Generated {data}', flush=True)
    sleep(data)
    # return data via queue
    queue.put(data)

# protect the entry point
if __name__ == '__main__':
    # create the queue
    queue = Queue()
    # create a child process process
    process = Process(target=task, args=(queue,))
    # start the process
    process.start()
    # wait for the return value
    value = queue.get()
    # report return value
    print(f'Returned: {value}')
