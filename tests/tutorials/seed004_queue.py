from multiprocessing import Queue, Process
import time

def get_even(nums, q):
    """Obtain the even numbers from a set of input numbers
    Multiprocessing Queue is passed as an additional argument
    Queue will consist of all even numbers"""
    q.put([n for n in nums if n%2 == 0])
#     q.put(list(filter(lambda n: n%2==0, nums))) # alternate method

if __name__ == "__main__":
    q = Queue()
    p = Process(target=get_even, args=(range(100), q))
    p.start()
    p.join()
    # Display the contents of the queue until it is empty
    while not q.empty():
        print(f"Queue: {q.get()}")
